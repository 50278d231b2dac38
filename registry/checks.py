"""System checks of the registry's own settings."""
from django.conf import settings
from django.core.checks import Error, Warning, register

MISSING_SECRET_KEY = "Set SECRET_KEY in the environment (only DEBUG=1 has a default)."
MISSING_AUDIT_CHAIN_KEY = ("Set AUDIT_CHAIN_KEY in the environment: without it the audit tables are not sealed and "
                           "audit_verify refuses to run.")
MISSING_EXPORT_SHIFT_KEY = ("Set EXPORT_SHIFT_KEY in the environment: without it the dataset export refuses "
                            "the shift-dates de-identification.")


@register()
def secret_key_is_set(app_configs, **kwargs):
    if getattr(settings, "SECRET_KEY_MISSING", False):
        return [Error(MISSING_SECRET_KEY, id="registry.E001")]
    return []


@register()
def export_shift_key_is_set(app_configs, **kwargs):
    if not getattr(settings, "EXPORT_SHIFT_KEY", None):
        return [Warning(MISSING_EXPORT_SHIFT_KEY, id="registry.W001")]
    return []


@register()
def audit_chain_key_is_set(app_configs, **kwargs):
    if not getattr(settings, "AUDIT_CHAIN_KEY", None):
        return [Warning(MISSING_AUDIT_CHAIN_KEY, id="registry.W003")]
    return []


@register(deploy=True)
def workers_share_a_cache(app_configs, **kwargs):
    """Without REDIS_URL each worker process has its own cache: the dashboard computes everything
    once per worker, and an import's error report is found only by the worker that made it."""
    if "locmem" in settings.CACHES["default"]["BACKEND"].lower():
        return [Warning("Set REDIS_URL so that every worker shares one cache (dashboard results, import "
                        "error reports).", id="registry.W002")]
    return []
