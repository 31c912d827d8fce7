"""camelCase JSON in and out. Input is strict: wrong JSON types and unknown fields are errors."""

from __future__ import annotations

import copy
from collections.abc import Collection, Iterator
from datetime import datetime, tzinfo
from typing import Any

from django.conf import settings
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from rest_framework import serializers
from rest_framework.fields import empty
from rest_framework.settings import ISO_8601, api_settings
from rest_framework.utils import html

from jobs.models import LIMITS, MAX_QUEUE_CONCURRENCY, MAX_RATE_PER_SEC, Job, JobEvent
from jobs.services import JobSpec, storable_text

MAX_BATCH = 1000


class StrictIntegerField(serializers.IntegerField):
    """An integer JSON number only: no strings, no booleans, no fractions."""

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, float) and data.is_integer():
            data = int(data)
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictFloatField(serializers.FloatField):
    """A JSON number only."""

    def to_internal_value(self, data: Any) -> float:
        if isinstance(data, bool) or not isinstance(data, int | float):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    """true or false only (DRF's own field also takes "yes", 1, ...)."""

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class StrictCharField(serializers.CharField):
    """A JSON string only (DRF's own field turns 123 into "123")."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        if "\x00" in data:
            raise serializers.ValidationError("Must not contain NUL characters.", code="invalid")
        return super().to_internal_value(data)


class AwareDateTimeField(serializers.DateTimeField):
    """RFC 3339: a string with an explicit UTC offset (a naive time is ambiguous)."""

    def to_internal_value(self, value: Any) -> Any:
        if not isinstance(value, str):
            self.fail("invalid", format="RFC 3339")
        parsed = super().to_internal_value(value)
        # Judge the text as given (super() made it aware): a date alone has no offset either.
        as_given = parse_datetime(value)
        if as_given is None or as_given.tzinfo is None:
            raise serializers.ValidationError("Must include a UTC offset (Z or +hh:mm).", code="invalid")
        return parsed


def _bounded(field_class: type, limit: str, **kwargs: Any) -> serializers.Field:
    low, high = LIMITS[limit]
    return field_class(required=False, min_value=low, max_value=high, **kwargs)


class StrictSerializer(serializers.Serializer):
    """Refuses fields it does not know, so a typo never silently falls back to a default."""

    rejects_unknown_fields = True  # the OpenAPI schema says so (additionalProperties: false)

    def get_fields(self) -> dict[str, serializers.Field]:
        """Shallow copies of the declared leaf fields.

        DRF deep-copies every declared field for each serializer, which re-runs each field's
        __init__ (validators and all): a fifth of a POST /jobs' CPU. A leaf field keeps no
        per-request state beyond what bind() sets on the copy; a nested serializer or a field
        with a child is bound to its parent inside, so those are still deep-copied.
        """
        return {
            name: copy.deepcopy(field)
            if isinstance(field, serializers.BaseSerializer) or hasattr(field, "child")
            else copy.copy(field)
            for name, field in self._declared_fields.items()
        }

    _given: Collection[str] | None = None  # the keys of the body being validated

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, dict):
            return super().to_internal_value(data)
        unknown = sorted(set(data) - set(self.fields))
        if unknown:
            raise serializers.ValidationError(
                {
                    storable_text(name): [serializers.ErrorDetail("Unknown field.", code="unknown_field")]
                    for name in unknown
                }
            )
        if html.is_html_input(data):  # a QueryDict: DRF fills left-out fields in
            return super().to_internal_value(data)
        self._given = data
        try:
            return super().to_internal_value(data)
        finally:
            self._given = None

    @property
    def _writable_fields(self) -> Iterator[serializers.Field]:
        """The fields DRF validates, less those it would skip for being left out of the body.

        DRF runs every field and skips a left-out one by raising SkipField: for an optional
        field without a default (for any field of a partial update). A job usually gives 2 of
        its 13 fields, so a 1,000-job batch raised 11,000 exceptions. Left out here, they end
        the same.
        """
        given, partial = self._given, getattr(self.root, "partial", False)
        for field in super()._writable_fields:
            if (
                given is None
                or field.field_name in given
                or (not partial and (field.required or field.default is not empty))
            ):
                yield field


# What each job field means, with its unit; the OpenAPI document shows these.
JOB_FIELD_HELP = {
    "id": "Assigned by TaskForge.",
    "queue": "1-100 characters of A-Z a-z 0-9 _ . : -; default: the job type's queue, else QUEUE_NAME.",
    "jobType": "A registered job type; any other is 400 unknown_job_type.",
    "payload": "Any JSON, given to the handler; at most TASKFORGE_MAX_PAYLOAD_BYTES bytes, else 413.",
    "state": "Where the job is in its lifecycle.",
    "priority": "Higher runs first; default 0.",
    "attemptCount": "Attempts started so far (counted when a worker claims the job).",
    "maxAttempts": "Attempts before the job is dead-lettered; default: the job type's, else 5.",
    "initialDelay": "Milliseconds before the first retry; default: the job type's, else 1000.",
    "backoff": "Multiplier between retries: retry k waits min(initialDelay * backoff^(k-1), maxDelay) ms.",
    "maxDelay": "Cap on a retry's delay, in milliseconds; default: the job type's, else 60000.",
    "jitter": "Draw each retry delay uniformly from [delay/2, delay] ms.",
    "timeout": "Milliseconds an attempt may run; null: no limit.",
    "idempotencyKey": "1-255 characters, unique per queue: sending it again returns the existing job.",
    "runAt": "Run no earlier than this time (RFC 3339 with a UTC offset); without it, at once.",
    "delay": "Run no earlier than now + delay milliseconds. Give runAt or delay, not both.",
    "nextRunAt": "When a PENDING or RETRYING job becomes QUEUED.",
    "queuedAt": "When the job last became QUEUED.",
    "startedAt": "When the latest attempt started.",
    "finishedAt": "When the job reached SUCCEEDED, DLQ or CANCELED.",
    "leaseOwner": "The worker running the job (RUNNING only).",
    "leaseExpiresAt": "When the running worker's lease ends unless it renews it.",
    "lastError": "The error of the latest failed attempt.",
    "result": "What the handler returned (SUCCEEDED only).",
    "cancelRequested": "A cancel was requested while the job ran; its handler is asked to stop.",
    "createdAt": "When the job was accepted.",
    "updatedAt": "When the job last changed.",
}


class JobCreateSerializer(StrictSerializer):
    """Body of POST /jobs (and each item of POST /jobs/batch)."""

    jobType = StrictCharField(max_length=200, help_text=JOB_FIELD_HELP["jobType"])
    payload = serializers.JSONField(required=False, default=dict, help_text=JOB_FIELD_HELP["payload"])
    queue = StrictCharField(required=False, max_length=100, help_text=JOB_FIELD_HELP["queue"])
    idempotencyKey = StrictCharField(
        required=False, max_length=255, help_text=JOB_FIELD_HELP["idempotencyKey"]
    )
    priority = _bounded(StrictIntegerField, "priority", help_text=JOB_FIELD_HELP["priority"])
    runAt = AwareDateTimeField(required=False, help_text=JOB_FIELD_HELP["runAt"])
    delay = _bounded(StrictIntegerField, "delay_ms", help_text=JOB_FIELD_HELP["delay"])
    maxAttempts = _bounded(StrictIntegerField, "max_attempts", help_text=JOB_FIELD_HELP["maxAttempts"])
    initialDelay = _bounded(StrictIntegerField, "initial_delay_ms", help_text=JOB_FIELD_HELP["initialDelay"])
    backoff = _bounded(StrictFloatField, "backoff", help_text=JOB_FIELD_HELP["backoff"])
    maxDelay = _bounded(StrictIntegerField, "max_delay_ms", help_text=JOB_FIELD_HELP["maxDelay"])
    jitter = StrictBooleanField(required=False, help_text=JOB_FIELD_HELP["jitter"])
    timeout = _bounded(StrictIntegerField, "timeout_ms", allow_null=True, help_text=JOB_FIELD_HELP["timeout"])

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "runAt" in attrs and "delay" in attrs:
            raise serializers.ValidationError({"delay": ["Give runAt or delay, not both."]})
        return attrs

    @staticmethod
    def to_spec(data: dict[str, Any], *, traceparent: str = "") -> JobSpec:
        """The validated body as the service's JobSpec."""
        return JobSpec(
            job_type=data["jobType"],
            payload=data.get("payload", {}),
            queue=data.get("queue"),
            priority=data.get("priority", 0),
            idempotency_key=data.get("idempotencyKey"),
            run_at=data.get("runAt"),
            delay_ms=data.get("delay"),
            max_attempts=data.get("maxAttempts"),
            initial_delay_ms=data.get("initialDelay"),
            backoff=data.get("backoff"),
            max_delay_ms=data.get("maxDelay"),
            jitter=data.get("jitter"),
            timeout_ms=data.get("timeout"),
            traceparent=traceparent,
        )


class ActionSerializer(StrictSerializer):
    """Optional body of an operator action; the reason lands in the job's event history."""

    reason = StrictCharField(required=False, max_length=500)


class QueueSettingsUpdateSerializer(StrictSerializer):
    """Body of PATCH /queues/{id}: only the fields given change; null clears a limit."""

    rateLimitPerSec = StrictFloatField(
        required=False,
        allow_null=True,
        min_value=0,
        max_value=MAX_RATE_PER_SEC,
        help_text="Job starts per second across the cluster; 0: no limit; null: RATE_LIMIT_PER_SEC.",
    )
    concurrencyLimit = StrictIntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        max_value=MAX_QUEUE_CONCURRENCY,
        help_text="Running jobs of this queue across the cluster; null: no limit.",
    )


class JobBatchSerializer(StrictSerializer):
    """Body of POST /jobs/batch: up to 1,000 jobs, validated all or nothing."""

    jobs = JobCreateSerializer(many=True, allow_empty=False, max_length=MAX_BATCH)


# Per serializer class: (output name, attribute path, bound field, rendered by _iso), built once.
_READABLE_FIELDS: dict[type, list[tuple[str, list[str], serializers.Field, bool]]] = {}


def _plain_iso(field: serializers.Field) -> bool:
    """A plain DateTimeField with neither its own format nor its own time zone.

    Whether the settings make it render ISO 8601 in the current zone is checked per object
    (_iso_settings): they can change (override_settings), this answer is cached per class.
    """
    return (
        type(field) is serializers.DateTimeField
        and not hasattr(field, "format")
        and not hasattr(field, "timezone")
    )


def _iso_settings() -> bool:
    """DRF's defaults: ISO 8601 output, aware datetimes in the current time zone."""
    return settings.USE_TZ and str(api_settings.DATETIME_FORMAT).lower() == ISO_8601


def _iso(value: datetime, tz: tzinfo) -> str:
    """DateTimeField.to_representation of an aware datetime, at a third of its cost.

    DRF looks the time zone up again for every value; a 1,000-job batch renders 3,000.
    """
    text = value.astimezone(tz).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


class CamelModelSerializer(serializers.ModelSerializer):
    """Renames model fields to camelCase (``RENAMES`` for the ones that also drop a unit).

    Output is rendered with fields built once per class: ModelSerializer rebuilds every
    field from the model for each instance, which cost more than the enqueue itself.
    """

    RENAMES: dict[str, str] = {}
    HELP: dict[str, str] = {}  # help texts by camelCase name, for the OpenAPI document

    def to_representation(self, instance: Any) -> dict[str, Any]:
        fields = _READABLE_FIELDS.get(type(self))
        if fields is None:
            fields = [
                (name, f.source_attrs, f, _plain_iso(f))
                for name, f in self.fields.items()
                if not f.write_only
            ]
            _READABLE_FIELDS[type(self)] = fields
        tz = timezone.get_current_timezone() if _iso_settings() else None
        out: dict[str, Any] = {}
        for name, path, field, iso in fields:
            value = instance
            for attr in path:
                value = getattr(value, attr)
            if value is None:
                out[name] = None
            elif iso and tz is not None and isinstance(value, datetime) and value.tzinfo is not None:
                try:
                    out[name] = _iso(value, tz)
                except OverflowError:  # beyond year 1-9999 in this zone: DRF's error
                    out[name] = field.to_representation(value)
            else:
                out[name] = field.to_representation(value)
        return out

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = {}
        for name, field in super().get_fields().items():
            camel = self.RENAMES.get(name) or "".join(
                part if i == 0 else part.capitalize() for i, part in enumerate(name.split("_"))
            )
            if camel != name:
                field.source = name
            if camel in self.HELP:
                field.help_text = self.HELP[camel]
            fields[camel] = field
        return fields


class JobSerializer(CamelModelSerializer):
    """The job representation of DESIGN.md §7 (durations in ms)."""

    RENAMES = {"initial_delay_ms": "initialDelay", "max_delay_ms": "maxDelay", "timeout_ms": "timeout"}
    HELP = JOB_FIELD_HELP

    class Meta:
        model = Job
        fields = [
            "id", "queue", "job_type", "payload", "state", "priority", "attempt_count",
            "max_attempts", "initial_delay_ms", "backoff", "max_delay_ms", "jitter", "timeout_ms",
            "idempotency_key", "run_at", "next_run_at", "queued_at", "started_at", "finished_at",
            "lease_owner", "lease_expires_at", "last_error", "result", "cancel_requested",
            "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = fields


class JobEventSerializer(CamelModelSerializer):
    """One entry of a job's history."""

    HELP = {
        "type": "created, queued, claimed, succeeded, failed, retry_scheduled, lease_expired, released, "
        "dead_lettered, replayed, retried, cancel_requested or canceled.",
        "attempt": "The attempt the event belongs to (0 before the first claim).",
        "workerId": "The worker involved, if any.",
        "details": "Event-specific: the error of a failure, the next run time of a retry, a reason, ...",
    }

    class Meta:
        model = JobEvent
        fields = ["id", "job_id", "type", "at", "attempt", "worker_id", "details"]
        read_only_fields = fields
