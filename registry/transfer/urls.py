"""Bulk import and dataset export pages (registry/transfer/views.py)."""
from django.urls import path

from registry.transfer import views

urlpatterns = [
    path("import/", views.import_upload, name="import_upload"),
    path("import/errors/<str:token>/", views.import_errors, name="import_errors"),
    path("export/", views.export_download, name="export_download"),
]
