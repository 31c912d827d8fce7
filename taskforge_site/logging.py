"""JSON log lines (one object per line) carrying request and job context."""

from __future__ import annotations

import contextvars
import logging
from datetime import UTC, datetime
from typing import Any

from opentelemetry import trace
from pythonjsonlogger.json import JsonFormatter as _BaseJsonFormatter

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
# (job_id, queue) of the job whose handler runs in this thread; the worker binds it, so a
# handler's own log calls carry them without passing `extra=`.
job_var: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar("job", default=None)

# Context keys copied from `extra=` onto the JSON object when a log call provides them.
CONTEXT_KEYS = ("job_id", "queue", "worker_id", "attempt", "job_type")


class ContextFilter(logging.Filter):
    """Stamps every record with the request id (workers log "-"), the running job's id and
    queue, and the current span's trace_id/span_id (only a traced process has a span)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        job = job_var.get()
        if job is not None and not hasattr(record, "job_id"):
            record.job_id, record.queue = job
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            record.trace_id = format(span.trace_id, "032x")
            record.span_id = format(span.span_id, "016x")
        return True


class JsonFormatter(_BaseJsonFormatter):
    """Emits `ts, level, logger, msg` first, then request id and any extra context."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("reserved_attrs", None)
        super().__init__(*args, **kwargs)

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        log_data["ts"] = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        log_data["level"] = record.levelname.lower()
        log_data["logger"] = record.name
        log_data["msg"] = record.getMessage()
        log_data["request_id"] = getattr(record, "request_id", "-")
        super().add_fields(log_data, record, message_dict)
        for key in ("message", "asctime"):
            log_data.pop(key, None)
