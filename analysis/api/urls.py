"""/api/v1/analysis/: the survival report and the analysis frame, in the "api" namespace with the
registry's endpoints (registry/urls.py joins them); covered by tests/registry/api/test_api_access.py."""
from django.urls import path

from analysis.api import views

urlpatterns = [
    path("v1/analysis/report/", views.ReportView.as_view(), name="analysis-report"),
    path("v1/analysis/frame/", views.FrameView.as_view(), name="analysis-frame"),
]
