"""System checks of the registry's own settings."""
from django.conf import settings
from django.core.checks import Error, register

MISSING_SECRET_KEY = "Set SECRET_KEY in the environment (only DEBUG=1 has a default)."


@register()
def secret_key_is_set(app_configs, **kwargs):
    if getattr(settings, "SECRET_KEY_MISSING", False):
        return [Error(MISSING_SECRET_KEY, id="registry.E001")]
    return []
