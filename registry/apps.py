from django.apps import AppConfig


class RegistryConfig(AppConfig):
    name = "registry"
    verbose_name = "Sarcoma PM registry"

    def ready(self):
        from registry import checks  # noqa: F401 (registers the system checks)
