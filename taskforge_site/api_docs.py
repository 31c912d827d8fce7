"""The schema and the docs pages (Swagger UI, Redoc), served from our own static files.

Kept apart from taskforge_site/openapi.py: drf-spectacular's views import the
DEFAULT_SCHEMA_CLASS when they load, so they cannot live in the module that defines it.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.http import HttpResponseBase
from django.urls import reverse
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView
from rest_framework import exceptions
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response


class _JSONErrors:
    """The schema and docs views render with YAML or HTML; their errors stay JSON like the API's."""

    def finalize_response(
        self, request: Request, response: HttpResponseBase, *args: Any, **kwargs: Any
    ) -> Any:
        if isinstance(response, Response) and response.exception:
            request.accepted_renderer, request.accepted_media_type = JSONRenderer(), "application/json"
        return super().finalize_response(request, response, *args, **kwargs)  # type: ignore[misc]


class SchemaView(_JSONErrors, SpectacularAPIView):
    """GET /api/schema/: YAML, or JSON with ?format=json or Accept: application/vnd.oai.openapi+json."""


class _DocsPage(_JSONErrors):
    """A page for people: without a session it sends them to the admin login, not a JSON 401."""

    def handle_exception(self, exc: Exception) -> Any:
        if isinstance(exc, exceptions.NotAuthenticated):
            return redirect_to_login(self.request.get_full_path(), reverse("admin:login"))  # type: ignore[attr-defined]
        return super().handle_exception(exc)  # type: ignore[misc]


class SwaggerView(_DocsPage, SpectacularSwaggerView):
    """GET /api/docs/: Swagger UI from the sidecar's static files."""


class RedocView(_DocsPage, SpectacularRedocView):
    """GET /api/redoc/: Redoc from the sidecar's static files (templates/drf_spectacular/redoc.html)."""
