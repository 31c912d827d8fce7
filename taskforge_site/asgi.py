"""ASGI entry point (the API's views are sync; gunicorn gthread via wsgi.py is the default)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "taskforge_site.settings")
application = get_asgi_application()
