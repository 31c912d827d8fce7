"""Domain errors raised by services; the API maps each to its HTTP status and error code."""

from __future__ import annotations

from typing import Any


class TaskForgeError(Exception):
    """Base: carries the contract's error code, an HTTP status and structured details."""

    code = "internal_error"
    http_status = 500

    def __init__(self, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = {} if details is None else details


class JobValidationError(TaskForgeError, ValueError):
    code = "validation_error"
    http_status = 400


class UnknownJobType(TaskForgeError, ValueError):
    code = "unknown_job_type"
    http_status = 400


class PayloadTooLarge(TaskForgeError, ValueError):
    code = "payload_too_large"
    http_status = 413


class IdempotencyKeyReused(TaskForgeError):
    code = "idempotency_key_reused"
    http_status = 422


class InvalidStateTransition(TaskForgeError):
    code = "invalid_state_transition"
    http_status = 409


class DependencyNotReady(TaskForgeError):
    code = "dependency_not_ready"
    http_status = 503


class JobNotFound(TaskForgeError):
    code = "not_found"
    http_status = 404
