"""/api/: the REST API v1, its OpenAPI schema and docs, and the token pages.

Every name here is covered by tests/registry/api/test_api_access.py, which fails when an endpoint is added
without saying who may use it."""
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.routers import DefaultRouter

from registry.api import deleted, exports, freezes, pages, queries, views

app_name = "api"  # the analysis endpoints join this namespace in registry/urls.py


router = DefaultRouter()
router.include_root_view = False  # /api/ is the guide
router.include_format_suffixes = False
router.register("centres", views.CentreViewSet, basename="centres")
for url, viewset in views.VIEWSETS.items():
    router.register(url, viewset, basename=url)
router.register("deleted-records", deleted.DeletedRecordViewSet, basename="deleted-records")
router.register("queries", queries.QueryViewSet, basename="queries")
router.register("exports", exports.ExportViewSet, basename="exports")

urlpatterns = [
    path("", pages.guide, name="guide"),
    path("tokens/", pages.token_list, name="tokens"),
    path("tokens/<int:pk>/revoke/", pages.token_revoke, name="token_revoke"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves its script as a file, so the page needs no inline script (CSP).
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="api:schema"), name="swagger-ui"),
    path("v1/freezes/", freezes.FreezeListView.as_view(), name="freezes-list"),
    path("v1/freezes/<str:name>/diff/", freezes.FreezeDiffView.as_view(), name="freezes-diff"),
    path("v1/", include(router.urls)),
    re_path(r"^v1/.+/$", views.NotFoundView.as_view(), name="not-found"),
]
