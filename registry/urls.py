"""The site's root URL configuration: the one module that composes the registry and the analysis
app (the architecture contract in pyproject.toml allows it this import and no other)."""
from django.contrib import admin
from django.urls import include, path

from analysis.api import urls as analysis_api_urls
from registry.api import urls as api_urls
from registry.security import log as security_log
from registry.security import two_factor

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/two-factor/", two_factor.verify, name="two_factor_verify"),
    path("accounts/two-factor/setup/", two_factor.setup, name="two_factor_setup"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("security/", security_log.security_log, name="security_log"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("api/", include((analysis_api_urls.urlpatterns + api_urls.urlpatterns, api_urls.app_name))),
    path("redcap/api/", include("registry.api.redcap_urls")),
    path("transfer/", include("registry.transfer.urls")),
    path("analysis/", include("analysis.dashboard.urls")),
    path("", include("registry.web.urls")),
]
