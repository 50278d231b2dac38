from django.apps import AppConfig


class RegistryConfig(AppConfig):
    name = "registry"
    verbose_name = "Sarcoma PM registry"

    def ready(self):
        from registry import audit_tables, checks  # noqa: F401 (checks registers the system checks)
        from registry.services import seals

        audit_tables.register_triggers()
        seals.connect()
