"""One error shape everywhere: ``{"code", "message", "details"}`` with application/json.

DRF errors go through ``exception_handler``; Django-level errors (unrouted URLs, 405s outside
DRF, crashes, bad hosts) go through the ``handler*`` views wired in the root urlconf. Only the
admin keeps Django's HTML error pages.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from rest_framework import exceptions
from rest_framework.parsers import JSONParser
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from jobs.errors import DependencyNotReady, PayloadTooLarge, TaskForgeError

logger = logging.getLogger("taskforge.api")


# DRF's own codes renamed to the contract's names.
_CODE_NAMES = {
    "parse_error": "invalid_json",
    "authentication_failed": "not_authenticated",
    "not_authenticated": "not_authenticated",
    "method_not_allowed": "method_not_allowed",
    "unsupported_media_type": "unsupported_media_type",
    "not_found": "not_found",
    "permission_denied": "permission_denied",
    "throttled": "throttled",
}


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    """The one error shape."""
    return {"code": code, "message": message, "details": {} if details is None else details}


class JSONObjectParser(JSONParser):
    """JSON parser that turns oversized or absurdly nested bodies into client errors, not 500s."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            return super().parse(stream, media_type, parser_context)
        except RequestDataTooBig as exc:
            raise PayloadTooLarge("The request body is too large.") from exc
        except RecursionError as exc:  # absurdly deep nesting; json gives up before we do
            raise exceptions.ParseError("JSON nested too deeply.") from exc


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Wraps DRF's handler so every API error has the contract's shape."""
    if isinstance(exc, RequestDataTooBig):
        exc = PayloadTooLarge("The request body is too large.")
    if isinstance(exc, OperationalError | InterfaceError):
        # Postgres is down or restarting: a client can retry, so say so instead of a 500. Nothing
        # was acknowledged: an enqueue answers 2xx only after its commit.
        logger.warning("database unavailable", extra={"error": str(exc)})
        exc = DependencyNotReady("The database is not available; retry shortly.", {"postgres": "unavailable"})
    if isinstance(exc, TaskForgeError):
        return Response(error_body(exc.code, exc.message, exc.details), status=exc.http_status)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # unexpected: handler500 answers with internal_error
    if isinstance(exc, exceptions.ValidationError):
        body = error_body("validation_error", "Invalid request.", exc.get_full_details())
    else:
        codes = exc.get_codes() if isinstance(exc, exceptions.APIException) else "not_found"
        raw_code = codes if isinstance(codes, str) else "error"
        data = response.data if isinstance(response.data, dict) else {}
        message = str(data.get("detail", "")) or "Request failed."
        details = {"wait": exc.wait} if isinstance(exc, exceptions.Throttled) else {}
        body = error_body(_CODE_NAMES.get(raw_code, raw_code), message, details)
    response.data = body
    return response


def _is_admin(request: HttpRequest) -> bool:
    return request.path.startswith("/admin/")


def handler400(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _is_admin(request):
        return defaults.bad_request(request, exception)
    if isinstance(exception, RequestDataTooBig):
        return JsonResponse(error_body("payload_too_large", "The request body is too large."), status=413)
    # e.g. a disallowed Host header; the contract has no generic "bad_request" code
    return JsonResponse(error_body("validation_error", "Bad request."), status=400)


def handler403(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _is_admin(request):
        return defaults.permission_denied(request, exception)
    return JsonResponse(error_body("permission_denied", "Permission denied."), status=403)


def handler404(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _is_admin(request):
        return defaults.page_not_found(request, exception)
    return JsonResponse(error_body("not_found", "No such resource."), status=404)


def handler500(request: HttpRequest) -> HttpResponse:
    if _is_admin(request):
        return defaults.server_error(request)
    return JsonResponse(
        error_body("internal_error", "Internal error; the request id is in X-Request-ID."), status=500
    )
