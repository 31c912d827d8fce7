"""Django settings for TaskForge, built from the validated environment (taskforge_site.env)."""

import os
import sys
from pathlib import Path

from taskforge_site.env import ConfigError, load_config

BASE_DIR = Path(__file__).resolve().parent.parent

try:
    TASKFORGE = load_config(os.environ)
except ConfigError as exc:  # fail before doing anything else, naming every bad variable
    print(f"taskforge: {exc}", file=sys.stderr)
    raise SystemExit(2) from None

SECRET_KEY = TASKFORGE.secret_key
DEBUG = TASKFORGE.debug
ALLOWED_HOSTS = TASKFORGE.allowed_hosts

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI and Redoc served from our static files, no CDN
    "jobs",
    "dlq",
    "scheduler",
    "workers",
    "django_prometheus",
]

MIDDLEWARE = [
    # First and last, so django-prometheus' request metrics time the whole stack.
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "taskforge_site.middleware.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "taskforge_site.urls"
WSGI_APPLICATION = "taskforge_site.wsgi.application"
APPEND_SLASH = False

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # UI_DIR comes first so operators can restyle the ops UI without forking.
        "DIRS": [p for p in (TASKFORGE.ui_dir, str(BASE_DIR / "templates")) if p],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

_pg = TASKFORGE.postgres
DATABASES = {
    "default": {
        "ENGINE": "taskforge_site.postgres",  # Django's, with a health check without a round trip
        "NAME": _pg.get("dbname", ""),
        "USER": _pg.get("user", ""),
        "PASSWORD": _pg.get("password", ""),
        "HOST": _pg.get("host", ""),
        "PORT": _pg.get("port", ""),
        "OPTIONS": {
            "connect_timeout": 5,  # /readyz and workers must not hang on an unreachable server
            "prepare_threshold": 5,  # the named hot-path statements (jobs/sql.py) get prepared
            **{k: v for k, v in _pg.items() if k not in {"dbname", "user", "password", "host", "port"}},
        },
        # Persistent per-thread connections: workers and gunicorn threads reuse theirs, and
        # the health check replaces one that Postgres dropped.
        "CONN_MAX_AGE": 300,
        "CONN_HEALTH_CHECKS": True,
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
try:  # WhiteNoise warns about a missing STATIC_ROOT; collectstatic fills it for production
    STATIC_ROOT.mkdir(exist_ok=True)
except OSError:
    pass
STATICFILES_DIRS = [p for p in (Path(TASKFORGE.ui_dir) / "static",) if TASKFORGE.ui_dir]
# Finders let WhiteNoise serve admin assets without a collectstatic step (dev and tests).
WHITENOISE_USE_FINDERS = True

# Large enough for a batch of jobs; single payloads are limited by TASKFORGE_MAX_PAYLOAD_BYTES.
DATA_UPLOAD_MAX_MEMORY_SIZE = max(16 << 20, 4 * TASKFORGE.max_payload_bytes)

REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["taskforge_site.errors.JSONObjectParser"],
    # Token first: its WWW-Authenticate header turns "no credentials" into a 401, not a 403.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "taskforge_site.authentication.RoleTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["taskforge_site.permissions.RolePermission"],
    "EXCEPTION_HANDLER": "taskforge_site.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "taskforge_site.openapi.TaskForgeAutoSchema",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "TaskForge API",
    "DESCRIPTION": (
        "A durable job queue: submit jobs, follow them, act on them. JSON is camelCase; durations "
        "are in milliseconds. Every error is `{code, message, details}`. Authenticate with "
        "`Authorization: Token <key>` (`manage.py createapitoken`) or an admin session."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["taskforge_site.permissions.RolePermission"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {"JobStateEnum": "jobs.states.JobState"},
    "ENFORCE_NON_BLANK_FIELDS": True,  # our strings refuse "", so the schema says minLength 1
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "taskforge_site.openapi.drop_trailing_slashes",
    ],
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "taskforge_site.logging.ContextFilter"}},
    "formatters": {"json": {"()": "taskforge_site.logging.JsonFormatter"}},
    "handlers": {
        "stderr": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "filters": ["context"],
        }
    },
    "root": {"handlers": ["stderr"], "level": TASKFORGE.log_level.upper().replace("WARN", "WARNING")},
    "loggers": {
        # Our access log replaces django.request's duplicate 4xx warnings.
        "django.request": {"level": "ERROR"},
        "django.server": {"level": "ERROR"},
    },
}
