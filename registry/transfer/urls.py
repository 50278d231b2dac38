"""Bulk import and dataset export pages (registry/transfer/views.py)."""
from django.urls import path

from registry.transfer import views

urlpatterns = [
    path("import/", views.import_upload, name="import_upload"),
    path("export/", views.export_download, name="export_download"),
    path("jobs/<uuid:pk>/", views.job_detail, name="job_detail"),
    path("jobs/<uuid:pk>/file", views.job_result, name="job_result"),
    path("jobs/<uuid:pk>/import-now/", views.job_import_now, name="job_import_now"),
    path("jobs/<uuid:pk>/errors.csv", views.job_errors, name="job_errors"),
    path("jobs/<uuid:pk>/pseudonyms.csv", views.job_pseudonyms, name="job_pseudonyms"),
]
