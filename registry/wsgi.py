import os

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "registry.settings")
application = get_wsgi_application()

# gunicorn runs no system checks: refuse to serve with a throwaway key (registry/checks.py).
if settings.SECRET_KEY_MISSING:
    from registry.checks import MISSING_SECRET_KEY

    raise ImproperlyConfigured(MISSING_SECRET_KEY)
