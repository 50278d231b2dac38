"""Request rates per API token, per signed-in user and per anonymous client (DRF throttles).

Rates come from settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] (scopes "token", "user", "anon"),
read at request time so a changed setting applies at once. An exceeded rate answers 429 with
`Retry-After` (seconds). Counters live in the default cache: Redis when REDIS_URL is set, so every
worker shares them.
"""
from rest_framework import throttling
from rest_framework.settings import api_settings

from registry.api.models import ApiToken


class _SettingsRate:
    def get_rate(self):
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)


class TokenRateThrottle(_SettingsRate, throttling.SimpleRateThrottle):
    """Per token: two scripts of one user with two tokens are throttled apart."""

    scope = "token"

    def get_cache_key(self, request, view):
        if not isinstance(request.auth, ApiToken):
            return None
        return self.cache_format % {"scope": self.scope, "ident": request.auth.pk}


class UserRateThrottle(_SettingsRate, throttling.SimpleRateThrottle):
    """Per user, over all their tokens and their browser session together."""

    scope = "user"

    def get_cache_key(self, request, view):
        if not request.user or not request.user.is_authenticated:
            return None
        return self.cache_format % {"scope": self.scope, "ident": request.user.pk}


class AnonymousRateThrottle(_SettingsRate, throttling.AnonRateThrottle):
    scope = "anon"
