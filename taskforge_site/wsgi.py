"""WSGI entry point: `gunicorn taskforge_site.wsgi` (gunicorn.conf.py binds HTTP_ADDR)."""

import os

from django.core.wsgi import get_wsgi_application

from taskforge_site.permissions import warn_if_api_auth_off

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "taskforge_site.settings")
application = get_wsgi_application()
warn_if_api_auth_off()
