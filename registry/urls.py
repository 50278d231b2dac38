from django.contrib import admin
from django.urls import include, path

from registry import security_log, two_factor

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/two-factor/", two_factor.verify, name="two_factor_verify"),
    path("accounts/two-factor/setup/", two_factor.setup, name="two_factor_setup"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("security/", security_log.security_log, name="security_log"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("api/", include("registry.api.urls")),
    path("redcap/api/", include("registry.api.redcap_urls")),
    path("transfer/", include("registry.transfer_urls")),
    path("analysis/", include("analysis.urls")),
    path("", include("registry.web_urls")),
]
