"""ASGI entry point (the API's views are sync; gunicorn gthread via wsgi.py is the default)."""

import os

from django.core.asgi import get_asgi_application

from taskforge_site.permissions import warn_if_api_auth_off

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "taskforge_site.settings")
application = get_asgi_application()
warn_if_api_auth_off()
