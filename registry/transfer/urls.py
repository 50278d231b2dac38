"""Bulk import and dataset export pages (registry/transfer/views.py)."""
from django.urls import path

from registry.transfer import views as transfer_views

urlpatterns = [
    path("import/", transfer_views.import_upload, name="import_upload"),
    path("import/errors/<str:token>/", transfer_views.import_errors, name="import_errors"),
    path("export/", transfer_views.export_download, name="export_download"),
]
