"""OpenAPI 3 for the API (drf-spectacular); the pages that show it are in taskforge_site/api_docs.py.

``TaskForgeAutoSchema`` is the project's DEFAULT_SCHEMA_CLASS, so every operation, including
ones added later, documents the error responses it can give in the one error shape; views only
declare their success bodies and their own extra errors (409, 422, ...).
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers
from rest_framework.permissions import SAFE_METHODS, AllowAny


class ErrorSerializer(serializers.Serializer):
    """Every API error: a stable code, a message for people, structured details."""

    code = serializers.CharField(
        help_text=(
            "Stable, machine-readable: validation_error, invalid_json, unknown_job_type, "
            "payload_too_large, unsupported_media_type, not_found, method_not_allowed, "
            "not_acceptable, invalid_state_transition, idempotency_key_reused, not_authenticated, "
            "permission_denied, throttled, dependency_not_ready, internal_error."
        )
    )
    message = serializers.CharField(help_text="For people; its wording may change.")
    details = serializers.DictField(
        help_text="Structured context, e.g. the errors per field, or the checks that failed; may be {}."
    )


# The generic errors, by status; `_error_statuses` picks the ones an operation can give.
ERROR_RESPONSES = {
    "400": "validation_error (a field or query parameter is invalid or unknown), invalid_json, "
    "or unknown_job_type.",
    "401": "not_authenticated: no credentials, or an unknown token. Send `Authorization: Token <key>`.",
    "403": "permission_denied: the caller's role does not allow this (viewers may only read).",
    "404": "not_found: no such resource, or a malformed id.",
    "413": "payload_too_large: the body or a payload is over the limit.",
    "415": "unsupported_media_type: the body is not application/json.",
    "500": "internal_error: unexpected; quote the X-Request-ID response header when reporting it.",
    "503": "dependency_not_ready: the database is unavailable; nothing was changed, retry shortly.",
}


def error_response(description: str) -> OpenApiResponse:
    """An error response in the one shape, for a view's own statuses (409, 422, ...)."""
    return OpenApiResponse(ErrorSerializer, description=description)


class TaskForgeAutoSchema(AutoSchema):
    """Adds the generic error responses to every operation (a class-level @extend_schema would
    replace the success responses instead, see notes §4) and closes strict request bodies."""

    def _get_response_bodies(self, direction: str = "response") -> dict[str, Any]:
        responses = super()._get_response_bodies(direction)
        for status in self._error_statuses():
            if status not in responses:
                responses[status] = self._get_response_for_code(
                    error_response(ERROR_RESPONSES[status]), status, direction=direction
                )
        return dict(sorted(responses.items()))

    def _error_statuses(self) -> list[str]:
        statuses = ["500"]
        if not any(isinstance(p, AllowAny) for p in self.view.get_permissions()):
            statuses += ["401", "403", "503"]  # the credentials are checked in the database
        if "{" in self.path:
            statuses.append("404")
        if self.method not in SAFE_METHODS:
            statuses += ["400", "413", "415"]
        elif any(p["in"] == "query" for p in self._get_parameters()):
            statuses.append("400")
        return statuses

    def _map_basic_serializer(self, serializer: Any, direction: str) -> dict[str, Any]:
        schema = super()._map_basic_serializer(serializer, direction)
        if getattr(serializer, "rejects_unknown_fields", False):
            schema["additionalProperties"] = False
        return schema


def drop_trailing_slashes(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """POSTPROCESSING_HOOK: `/jobs` as the contract writes it (the router takes both forms, and
    drf-spectacular would print the slashed one)."""
    result["paths"] = {path.rstrip("/") or "/": item for path, item in result["paths"].items()}
    return result
