"""The site's root URL configuration: the one module that composes the registry and the analysis
app (the architecture contract in pyproject.toml allows it this import and no other)."""
from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from analysis.api import urls as analysis_api_urls
from registry.api import urls as api_urls
from registry.security import export as audit_export
from registry.security import log as security_log
from registry.security import two_factor

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/two-factor/", two_factor.verify, name="two_factor_verify"),
    path("accounts/two-factor/setup/", two_factor.setup, name="two_factor_setup"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/password_change/", auth_views.PasswordChangeView.as_view(), name="password_change"),
    path("accounts/password_change/done/", auth_views.PasswordChangeDoneView.as_view(), name="password_change_done"),
    path("security/", security_log.security_log, name="security_log"),
    path("security/audit/", audit_export.audit_export, name="audit_export"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("api/", include((analysis_api_urls.urlpatterns + api_urls.urlpatterns, api_urls.app_name))),
    path("redcap/api/", include("registry.api.redcap_urls")),
    path("transfer/", include("registry.transfer.urls")),
    path("analysis/", include("analysis.dashboard.urls")),
    path("", include("registry.web.urls")),
]

# Errors under /api/ are problem details there too (registry.api.problems); elsewhere the site's pages.
handler404 = "registry.api.problems.page_not_found"
handler500 = "registry.api.problems.server_error"

# Resetting a password by e-mail only where the registry can send mail (settings.EMAIL_HOST):
# without it the pages would promise a message that never comes.
if settings.EMAIL_HOST:
    urlpatterns.insert(5, path("accounts/", include([
        path("password_reset/", auth_views.PasswordResetView.as_view(), name="password_reset"),
        path("password_reset/done/", auth_views.PasswordResetDoneView.as_view(), name="password_reset_done"),
        path("reset/<uidb64>/<token>/", auth_views.PasswordResetConfirmView.as_view(), name="password_reset_confirm"),
        path("reset/done/", auth_views.PasswordResetCompleteView.as_view(), name="password_reset_complete"),
    ])))
