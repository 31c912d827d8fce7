"""JSON log lines (one object per line) carrying request and job context."""

from __future__ import annotations

import contextvars
import logging
from datetime import UTC, datetime
from typing import Any

from pythonjsonlogger.json import JsonFormatter as _BaseJsonFormatter

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

# Context keys copied from `extra=` onto the JSON object when a log call provides them.
CONTEXT_KEYS = ("job_id", "queue", "worker_id", "attempt", "job_type")


class ContextFilter(logging.Filter):
    """Stamps every record with the current request id (workers log "-")."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
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
