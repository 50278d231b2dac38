"""URLs of the survival dashboard (mounted at /analysis/). Every view takes the same query:
?centre=CODE&plan=ID&size_cutoff_mm=..&lesions_cutoff=..&tfi_cutoff_months=..&covariates=..&stratify=..
&freeze=NAME (a data freeze instead of the live registry)"""
from django.urls import path

from analysis.dashboard import views

app_name = "analysis"

urlpatterns = [
    path("", views.dashboard_page, name="dashboard"),
    path("version", views.data_version, name="version"),
    path("print/", views.print_page, name="print"),
    path("figures/<slug:name>.<str:fmt>", views.figure_download, name="figure"),
    path("data/<slug:table>.csv", views.table_download, name="table"),
    path("report.json", views.json_download, name="json"),
    path("plan.json", views.plan_download, name="plan_json"),
    path("paper-pack.zip", views.paper_pack_download, name="paper_pack"),
    path("plans/", views.plan_save, name="plan_save"),
]
