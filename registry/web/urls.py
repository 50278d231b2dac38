"""URLs of the data-entry application. Every name here is covered by tests/registry/web/test_web_access.py,
which fails when a page is added without saying who may open it."""
from django.urls import path

from registry.web import deleted, freezes, progress, queries, signatures, verification, views

urlpatterns = [
    path("", views.home, name="home"),
    path("patients/", views.patient_list, name="patient_list"),
    path("progress/", progress.study_progress, name="study_progress"),
    path("follow-up-due/", progress.follow_up_due, name="follow_up_due"),
    path("centres/<str:code>/patients/new/", views.patient_new, name="patient_new"),
    path("centres/<str:code>/data-quality/", views.data_quality, name="data_quality"),
    path("patients/<str:patient_id>/", views.patient_detail, name="patient_detail"),
    path("patients/<str:patient_id>/edit/", views.patient_edit, name="patient_edit"),
    path("patients/<str:patient_id>/delete/", views.patient_delete, name="patient_delete"),
    path("patients/<str:patient_id>/history/", views.patient_history, name="patient_history"),
    path("patients/<str:patient_id>/status/", views.record_status, name="record_status"),
    path("patients/<str:patient_id>/<slug:kind>/add/", views.record_add, name="record_add"),
    path("patients/<str:patient_id>/<slug:kind>/<int:pk>/edit/", views.record_edit, name="record_edit"),
    path("patients/<str:patient_id>/<slug:kind>/<int:pk>/delete/", views.record_delete, name="record_delete"),
    path("deleted/", deleted.deleted_records, name="deleted_records"),
    path("deleted/<int:pk>/restore/", deleted.deleted_record_restore, name="deleted_record_restore"),
    path("patients/<str:patient_id>/sign/", signatures.patient_sign, name="patient_sign"),
    path("centres/<str:code>/sign/", signatures.centre_sign, name="centre_sign"),
    path("patients/<str:patient_id>/verify/", verification.record_verify, name="patient_verify"),
    path("patients/<str:patient_id>/<slug:kind>/<int:pk>/verify/", verification.record_verify, name="record_verify"),
    path("patients/<str:patient_id>/<slug:kind>/<str:pk>/queries/new/", queries.query_new, name="query_new"),
    path("queries/", queries.query_list, name="query_list"),
    path("queries/<int:pk>/", queries.query_detail, name="query_detail"),
    path("freezes/", freezes.freeze_list, name="freeze_list"),
    path("freezes/diff/", freezes.freeze_diff, name="freeze_diff"),
    path("freezes/diff.csv", freezes.freeze_diff_csv, name="freeze_diff_csv"),
]
