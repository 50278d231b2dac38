from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("api/", include("registry.api.urls")),
    path("redcap/api/", include("registry.api.redcap_urls")),
    path("transfer/", include("registry.transfer_urls")),
    path("analysis/", include("analysis.urls")),
    path("", include("registry.web_urls")),
]
