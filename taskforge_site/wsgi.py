"""WSGI entry point: `gunicorn taskforge_site.wsgi` (gunicorn.conf.py binds HTTP_ADDR)."""

import os

from django.conf import settings
from django.core.wsgi import get_wsgi_application

from taskforge_site import tracing
from taskforge_site.permissions import warn_if_api_auth_off

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "taskforge_site.settings")
if settings.TASKFORGE.tracing_enabled:
    # Under gunicorn post_fork has already set up this worker; runserver and other servers
    # get it here. The request-span middleware must be in place before the app loads.
    tracing.setup_tracing("taskforge-api", exporter=settings.TASKFORGE.tracing_exporter)
    tracing.instrument_django()
application = get_wsgi_application()
warn_if_api_auth_off()
