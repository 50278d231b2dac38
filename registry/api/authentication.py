"""Authentication of machine clients by the tokens of registry.api.models: the REST API's header
here, the REDCap endpoint's form field in registry.api.redcap. Wrong tokens are counted per client
address: past settings.API_BAD_TOKEN_LIMIT in 10 minutes, every request of it is answered 429.
Every wrong token is recorded in the security log (registry.security.audit)."""
from axes.helpers import get_client_ip_address
from django.conf import settings
from django.core.cache import cache
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions

from registry.api.models import API, ApiToken
from registry.security import audit

BAD_TOKEN_WINDOW = 600  # seconds


def _bad_token_key(request):
    return f"api:bad-tokens:{get_client_ip_address(request)}"


def refuse_guessing(request):
    """429 for an address that sent too many wrong tokens lately (before any token is looked up)."""
    if (cache.get(_bad_token_key(request)) or 0) >= settings.API_BAD_TOKEN_LIMIT:
        raise exceptions.Throttled(wait=BAD_TOKEN_WINDOW, detail=gettext("Too many wrong tokens from this address."))


def count_bad_token(request):
    key = _bad_token_key(request)
    if not cache.add(key, 1, BAD_TOKEN_WINDOW):
        try:
            cache.incr(key)
        except ValueError:  # expired between the two calls
            cache.add(key, 1, BAD_TOKEN_WINDOW)


def authenticate_key(request, key, kind, message):
    """The (user, token) of an active token, or AuthenticationFailed with `message`."""
    refuse_guessing(request)
    token = ApiToken.authenticate(key, kind=kind)
    if token is None:
        count_bad_token(request)
        if key:  # no key at all is no token: the refusal is recorded as any other (middleware)
            audit.log_invalid_token(request)
        raise exceptions.AuthenticationFailed(message)
    return token.user, token


class TokenScope(permissions.BasePermission):
    """A read-only token reads; it never changes or deletes. A view whose POST only reads (a dataset
    export job) says so with `post_only_reads = True`."""

    message = _("This token is read-only.")

    def has_permission(self, request, view):
        token = request.auth
        if not (isinstance(token, ApiToken) and token.read_only) or request.method in permissions.SAFE_METHODS:
            return True
        return request.method == "POST" and getattr(view, "post_only_reads", False)


class ApiTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Token <key>` (or `Bearer <key>`) with a REST API token."""

    keywords = ("token", "bearer")

    def authenticate(self, request):
        parts = authentication.get_authorization_header(request).split()
        if not parts or parts[0].decode(errors="replace").lower() not in self.keywords:
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed(_("Send the header as 'Authorization: Token <key>'."))
        return authenticate_key(request, parts[1].decode(errors="replace"), API,
                                _("Invalid, expired or revoked token."))

    def authenticate_header(self, request):
        return "Token"


class ApiTokenScheme(OpenApiAuthenticationExtension):
    target_class = ApiTokenAuthentication
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "header", "name": "Authorization",
                "description": "A REST API token created at /api/tokens/, sent as `Token <key>`."}
