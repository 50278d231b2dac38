"""Django's makemigrations, which also runs where production settings are absent.

It reads the models only, never the secret key, so the check that SECRET_KEY is set
(registry.E001) is silenced for it: `makemigrations --check` works in any checkout. Every other
system check still runs."""
from django.conf import settings
from django.core.management.commands.makemigrations import Command as MakeMigrations
from django.test.utils import override_settings


class Command(MakeMigrations):
    def check(self, *args, **kwargs):
        with override_settings(SILENCED_SYSTEM_CHECKS=[*settings.SILENCED_SYSTEM_CHECKS, "registry.E001"]):
            return super().check(*args, **kwargs)
