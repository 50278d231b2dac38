"""Settings for the registry: one module, every deployment difference comes from the environment.

Environment variables:
  DEBUG           "1"/"true" for development (default off); any yes/no setting that is neither
                  1/0, true/false, yes/no nor on/off stops the start (ImproperlyConfigured)
  SECRET_KEY      required unless DEBUG is on
  EXPORT_SHIFT_KEY  the date-shifting key of de-identified exports (separate from SECRET_KEY)
  AUDIT_CHAIN_KEY the key of the audit tables' seals (registry.audit_chain; separate from SECRET_KEY)
  DATABASE_URL    e.g. postgres://user:pass@host:5432/db (default: SQLite file var/registry.sqlite3)
  ALLOWED_HOSTS   comma-separated (default: localhost,127.0.0.1 with DEBUG, none without)
  REDIS_URL       use Redis as the cache (shared by every worker) and as the job queue's broker;
                  default: local memory, and jobs run in the web process at once
  CSRF_TRUSTED_ORIGINS  comma-separated origins, for deployments behind a proxy
"""
import os
import secrets
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent


TRUE, FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def env_flag(name, default=False):
    """A yes/no setting; a value that is neither (SECURE_COOKIES=ture) stops the start."""
    value = os.environ.get(name)
    if value is None or not value.strip():
        return default
    if value.strip().lower() in TRUE:
        return True
    if value.strip().lower() in FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a yes/no value: use 1 or 0 (true/false, yes/no, on/off).")


def env_number(name, default, kind=int):
    """A number setting (kind int or float); a value that is not one stops the start."""
    value = os.environ.get(name)
    if value is None or not value.strip():
        return default
    try:
        return kind(value)
    except ValueError:
        raise ImproperlyConfigured(
            f"{name}={value!r} is not a {'whole number' if kind is int else 'number'}.") from None


def env_list(name, default=""):
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_flag("DEBUG")
DEBUG_TECHNICAL_404 = env_flag("DEBUG_TECHNICAL_404")  # Django's 404 page listing every URL (see registry/web/middleware.py)

SECRET_KEY = os.environ.get("SECRET_KEY")
# Without a key and without DEBUG the settings still load, so tools that need no key (such as
# makemigrations --check) run; the system check registry.E001 (registry/checks.py) stops every
# command that runs checks (runserver, migrate, check, import, export) and wsgi.py stops serving.
SECRET_KEY_MISSING = not SECRET_KEY and not DEBUG
if not SECRET_KEY:
    SECRET_KEY = "development-only-secret-key-never-use-in-production" if DEBUG else secrets.token_urlsafe(50)

# The key of the export's date shifting (shift-dates: a secret offset per patient). Separate from
# SECRET_KEY, so rotating that key (sessions, tokens) leaves every patient's offset as it was.
EXPORT_SHIFT_KEY = os.environ.get("EXPORT_SHIFT_KEY") or ("development-only-export-shift-key" if DEBUG else None)

# The key of the audit trail's seals (registry/audit_chain.py): a keyed hash, so that someone who can
# write the database but not read this setting cannot recompute the seals after changing a row.
# Keep it as long as the seals it made must verify; like EXPORT_SHIFT_KEY, separate from SECRET_KEY.
AUDIT_CHAIN_KEY = os.environ.get("AUDIT_CHAIN_KEY") or ("development-only-audit-chain-key" if DEBUG else None)

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1" if DEBUG else "")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "simple_history",
    "axes",
    "pgtrigger",  # the audit tables' append-only triggers (registry/audit_tables.py)
    "django_otp",
    "django_otp.plugins.otp_totp",
    "registry",
    "analysis",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI served from our own static files, no CDN
    "registry.api",
    # The admin's import and export of the clinical tables (registry/transfer/admin_*.py); last, so
    # that its translations come after every other app's.
    "import_export",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "registry.security.middleware.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "registry.security.middleware.RefuseNulMiddleware",
    "registry.security.middleware.NoStoreMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "registry.api.middleware.OptionalTrailingSlashMiddleware",  # before CommonMiddleware's APPEND_SLASH 301
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "registry.security.middleware.SessionLimitMiddleware",
    "registry.security.two_factor.TwoFactorMiddleware",
    # Records every 401, 403 and 429 in the security log (after authentication: it names the user).
    "registry.security.middleware.RefusedRequestMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    *(["registry.web.middleware.RegistryNotFoundPageMiddleware"] if DEBUG else []),
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Records the signed-in user on every history row written during a request.
    "simple_history.middleware.HistoryRequestMiddleware",
    # Locks a username out after repeated failed sign-ins; last, as django-axes asks.
    "axes.middleware.AxesMiddleware",
]

# Sign-in protection (django-axes, registry/security/lockout.py): AXES_FAILURE_LIMIT failed
# sign-ins of a user name from one address lock that (user name, address) pair, and
# AXES_USERNAME_FAILURE_LIMIT from all addresses together lock the user name, each for
# AXES_COOLOFF_HOURS; an administrator unlocks earlier (admin, Users: "Unlock sign-in"). Every
# sign-in, failed sign-in and sign-out is logged (admin: Axes).
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_PAIR_FAILURE_LIMIT = env_number("AXES_FAILURE_LIMIT", 5)
AXES_USERNAME_FAILURE_LIMIT = env_number("AXES_USERNAME_FAILURE_LIMIT", 30)
AXES_FAILURE_LIMIT = "registry.security.lockout.failure_limit"
AXES_COOLOFF_TIME = env_number("AXES_COOLOFF_HOURS", 1.0, float)
# The pair, not the user name alone: a user name lock at a few failures would let anyone lock
# anyone out; not the address alone: a hospital's staff share one outgoing address.
# Reverse proxies in front of the registry that append the client's address to X-Forwarded-For
# (docker-compose's nginx: 1; with a TLS terminator in front of it: 2). 0: the connection's address.
TRUSTED_PROXIES = env_number("TRUSTED_PROXIES", 0)
AXES_CLIENT_IP_CALLABLE = "registry.security.lockout.client_address"
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
# Keep every failed sign-in (AccessAttempt, the lockout counter, is reset by a success).
AXES_ENABLE_ACCESS_FAILURE_LOG = True
# django-axes deletes a user name's oldest failed sign-ins beyond this many; the failure log is
# append-only (registry/audit_tables.py), so the limit is set beyond reach.
AXES_ACCESS_FAILURE_LOG_PER_USER_LIMIT = 2**62

# Two-factor sign-in (django-otp, TOTP): optional for everyone, required for the roles listed
# in TWO_FACTOR_REQUIRED_ROLES (comma-separated: nurse, pi, coordinator; superusers count as
# coordinators). A required user without an authenticator is sent to set one up. Unset, it is
# "coordinator,pi" in production (who read every centre or pooled results) and nobody with DEBUG.
TWO_FACTOR_REQUIRED_ROLES = set(env_list("TWO_FACTOR_REQUIRED_ROLES", "" if DEBUG else "coordinator,pi"))
OTP_TOTP_ISSUER = os.environ.get("OTP_TOTP_ISSUER", "Sarcoma PM registry")
OTP_ADMIN_HIDE_SENSITIVE_DATA = True  # the admin never shows a TOTP secret

ROOT_URLCONF = "registry.urls"
WSGI_APPLICATION = "registry.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "registry.web.context_processors.navigation",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{BASE_DIR / 'var' / 'registry.sqlite3'}"),
        conn_max_age=env_number("CONN_MAX_AGE", 0),
        conn_health_checks=True,  # a kept connection the server closed meanwhile is replaced, not used
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

if os.environ.get("REDIS_URL"):
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                          "LOCATION": os.environ["REDIS_URL"]}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"
# Sessions end after 30 minutes without a request (SESSION_COOKIE_AGE, seconds), 12 hours after
# signing in whatever the activity (SESSION_MAX_HOURS), and with the browser.
SESSION_COOKIE_AGE = env_number("SESSION_COOKIE_AGE", 30 * 60)
SESSION_MAX_HOURS = env_number("SESSION_MAX_HOURS", 12.0, float)
SESSION_SAVE_EVERY_REQUEST = True
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
# Mail, for password resets (the reset pages exist only when EMAIL_HOST is set).
EMAIL_HOST = os.environ.get("EMAIL_HOST", "")
EMAIL_PORT = env_number("EMAIL_PORT", 587)
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_flag("EMAIL_USE_TLS", True)
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "registry@localhost")

LANGUAGE_CODE = "en"
LANGUAGES = [("en", _("English")), ("de", _("German"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "Europe/Berlin"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "var" / "staticfiles"  # written by collectstatic (the Docker image)
# Serve the app's own static files without a collectstatic step (the demo, the tests).
WHITENOISE_USE_FINDERS = True
STATICFILES_DIRS = [BASE_DIR / "static"] if (BASE_DIR / "static").exists() else []

# Production hardening (python manage.py check --deploy is clean with the .env.example values).
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if not DEBUG:
    SESSION_COOKIE_SECURE = env_flag("SECURE_COOKIES", True)
    CSRF_COOKIE_SECURE = env_flag("SECURE_COOKIES", True)
    SECURE_SSL_REDIRECT = env_flag("SECURE_SSL_REDIRECT")
    SECURE_HSTS_SECONDS = env_number("SECURE_HSTS_SECONDS", 0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_flag("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_flag("SECURE_HSTS_PRELOAD")
    if env_flag("BEHIND_TLS_PROXY"):  # the proxy terminates TLS and says so in this header
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "WARNING")},
}

# Bulk import and dataset export (registry/transfer/). Limits refuse a file
# before it is unpacked or parsed beyond them (zip bombs, oversized uploads).
IMPORT_MAX_UPLOAD_BYTES = env_number("IMPORT_MAX_UPLOAD_BYTES", 50 * 2**20)
IMPORT_MAX_UNPACKED_BYTES = env_number("IMPORT_MAX_UNPACKED_BYTES", 400 * 2**20)
IMPORT_MAX_COMPRESSION_RATIO = env_number("IMPORT_MAX_COMPRESSION_RATIO", 100)
IMPORT_MAX_ZIP_MEMBERS = env_number("IMPORT_MAX_ZIP_MEMBERS", 200)
IMPORT_MAX_ROWS = env_number("IMPORT_MAX_ROWS", 500000)
# A table has at most 16 columns; a header far wider is no registry file (and would cost time and
# memory per column), nor is a file of more cells than this in all (68,000 rows are ~700,000).
IMPORT_MAX_COLUMNS = env_number("IMPORT_MAX_COLUMNS", 200)
IMPORT_MAX_CELLS = env_number("IMPORT_MAX_CELLS", 20_000_000)
# Imports and exports run as jobs (registry/transfer/jobs.py) on Celery. With a broker (REDIS_URL,
# as in docker-compose) a separate worker runs them: `celery -A registry worker`. Without one
# (make run, the tests) a job runs in the web process as soon as it is submitted, with no limits.
# A worker stops a job after JOB_TIME_LIMIT seconds and refuses it more than JOB_MAX_MEMORY_MB of
# address space; a finished job's file and result are kept JOB_RESULT_HOURS for the page and download.
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL") or os.environ.get("REDIS_URL", "")
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("JOB_QUEUE", "registry")
CELERY_TASK_IGNORE_RESULT = True  # a job's state and result live in the Job table
CELERY_WORKER_PREFETCH_MULTIPLIER = 1  # jobs are long: a worker takes the next only when free
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
JOB_TIME_LIMIT = env_number("JOB_TIME_LIMIT", 900)
JOB_MAX_MEMORY_MB = env_number("JOB_MAX_MEMORY_MB", 3072)
JOB_RESULT_HOURS = env_number("JOB_RESULT_HOURS", 24.0, float)
CELERY_TASK_SOFT_TIME_LIMIT = JOB_TIME_LIMIT
CELERY_TASK_TIME_LIMIT = JOB_TIME_LIMIT + 30  # the hard stop if the job ignores the soft one
# The follow-up-due worklist lists living patients last seen longer ago than this (?months= overrides).
FOLLOW_UP_DUE_MONTHS = env_number("FOLLOW_UP_DUE_MONTHS", 6)
# PIs may download the pooled dataset only when this is on (coordinators always may).
EXPORT_ALLOW_PI = env_flag("EXPORT_ALLOW_PI")
# The coordinators' audit export (/security/audit/) stops after this many rows (and says so).
AUDIT_EXPORT_MAX_ROWS = env_number("AUDIT_EXPORT_MAX_ROWS", 200_000)

# REST API (registry/api): token or session authentication, cursor pagination, throttles.
# Rates are "N/second|minute|hour|day", per API token, per signed-in user and per anonymous client.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "registry.api.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated",
                                   "registry.api.authentication.TokenScope"],
    "DEFAULT_THROTTLE_CLASSES": [
        "registry.api.throttling.AnonymousRateThrottle",
        "registry.api.throttling.UserRateThrottle",
        "registry.api.throttling.TokenRateThrottle",
    ],
    "NUM_PROXIES": TRUSTED_PROXIES,  # anonymous clients are told apart by address, as the lockout does
    "DEFAULT_THROTTLE_RATES": {
        "anon": os.environ.get("API_RATE_ANON", "60/minute"),
        "user": os.environ.get("API_RATE_USER", "1200/minute"),
        "token": os.environ.get("API_RATE_TOKEN", "600/minute"),
    },
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["registry.api.parsers.JSONParser"],
    "COERCE_DECIMAL_TO_STRING": False,  # numbers are JSON numbers, e.g. "size_mm": 80.0
    "EXCEPTION_HANDLER": "registry.api.problems.exception_handler",  # RFC 9457 problem details
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Sarcoma PM registry API",
    "DESCRIPTION": "Pseudonymised cases of pulmonary metastasectomy for soft-tissue sarcoma. Field names and "
                   "codes are those of the registry's data dictionary. See /api/ for authentication and usage.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "PrimaryMarginEnum": "registry.codes.PRIMARY_MARGIN",
        "MetastasectomyMarginEnum": "registry.codes.PM_MARGIN",
    },
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums",
                             "registry.api.schema.document_error_responses"],
}

# Survival dashboard (analysis/dashboard.py): Kaplan-Meier groups smaller than this are not drawn;
# an open dashboard asks every this many seconds whether the data changed.
DASHBOARD_MIN_STRATUM = env_number("DASHBOARD_MIN_STRATUM", 5)
# API changes and deletions must name the version they were based on (If-Match), else 428.
API_REQUIRE_IF_MATCH = env_flag("API_REQUIRE_IF_MATCH", True)
# API tokens expire this many days after their creation.
API_TOKEN_DAYS = env_number("API_TOKEN_DAYS", 90)
# Wrong tokens from one address: after this many in 10 minutes every request is answered 429.
API_BAD_TOKEN_LIMIT = env_number("API_BAD_TOKEN_LIMIT", 20)
DASHBOARD_POLL_SECONDS = env_number("DASHBOARD_POLL_SECONDS", 20)
# The registry's release, named by every result beside its data and plan (figures, tables, the paper
# pack): set it at deployment to the release tag or commit; "dev" otherwise.
REGISTRY_VERSION = os.environ.get("REGISTRY_VERSION", "dev")
