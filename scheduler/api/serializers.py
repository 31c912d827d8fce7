"""The periodic schedules' JSON shapes (camelCase; strict input, as for jobs)."""

from __future__ import annotations

from rest_framework import serializers

from jobs.api.serializers import (
    CamelModelSerializer,
    StrictBooleanField,
    StrictCharField,
    StrictIntegerField,
    StrictSerializer,
)
from scheduler.models import (
    NAME_HELP,
    QUEUE_HELP,
    MisfirePolicy,
    PeriodicSchedule,
    validate_cron,
    validate_name,
    validate_queue,
    validate_timezone,
)

SCHEDULE_HELP = {
    "id": "Assigned by TaskForge.",
    "name": NAME_HELP,
    "cron": "5 fields (minute hour day-of-month month day-of-week), 6 with seconds first "
    "(`*/2 * * * * *`: every 2 seconds), or an alias such as @hourly.",
    "timezone": "IANA timezone the cron expression is read in; default UTC.",
    "jobType": "A registered job type; any other is 400 unknown_job_type.",
    "payload": "Any JSON, given to each job; at most TASKFORGE_MAX_PAYLOAD_BYTES bytes, else 413.",
    "queue": QUEUE_HELP,
    "priority": "Priority of each job: higher runs first; default 0.",
    "enabled": "Only enabled schedules fire; enabling again starts from the next tick.",
    "misfirePolicy": "Ticks no scheduler reached in time: skip (fire none), run_once (fire the latest) "
    "or catch_up (fire the oldest catchUpLimit of them); default run_once.",
    "catchUpLimit": "With catch_up, how many missed ticks fire at most; default 10.",
    "jitter": "Delay each tick's job by a random 0..jitter milliseconds; default 0.",
    "declared": "Declared in code (@periodic): only `enabled` can be changed here, and it cannot be deleted.",
    "nextFireAt": "The next tick; null while disabled.",
    "lastFiredAt": "The tick (or the run-now moment) of the last job this schedule enqueued.",
    "lastJobId": "The id of that job.",
    "lastError": "Why the last tick could not enqueue its job (it was skipped); null when it could.",
    "createdAt": "When the schedule was created.",
    "updatedAt": "When the schedule last changed.",
}


class ScheduleSerializer(CamelModelSerializer):
    """A periodic schedule."""

    RENAMES = {"jitter_ms": "jitter"}
    HELP = SCHEDULE_HELP

    class Meta:
        model = PeriodicSchedule
        fields = [
            "id", "name", "cron", "timezone", "job_type", "payload", "queue", "priority", "enabled",
            "misfire_policy", "catch_up_limit", "jitter_ms", "declared", "next_fire_at",
            "last_fired_at", "last_job_id", "last_error", "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = fields


def _optional_int(name: str, source: str) -> serializers.Field:
    """An optional integer field `name` with the range of its model field `source`."""
    renamed = {"source": source} if source != name else {}
    validators = PeriodicSchedule._meta.get_field(source).validators
    return StrictIntegerField(required=False, validators=validators, help_text=SCHEDULE_HELP[name], **renamed)


class ScheduleWriteSerializer(StrictSerializer):
    """Body of POST /schedules; PATCH takes any subset. Fields map to the model by `source`."""

    name = StrictCharField(max_length=200, validators=[validate_name], help_text=SCHEDULE_HELP["name"])
    cron = StrictCharField(max_length=200, validators=[validate_cron], help_text=SCHEDULE_HELP["cron"])
    timezone = StrictCharField(
        required=False, max_length=64, validators=[validate_timezone], help_text=SCHEDULE_HELP["timezone"]
    )
    jobType = StrictCharField(source="job_type", max_length=200, help_text=SCHEDULE_HELP["jobType"])
    payload = serializers.JSONField(required=False, help_text=SCHEDULE_HELP["payload"])
    queue = StrictCharField(
        required=False,
        allow_null=True,
        max_length=100,
        validators=[validate_queue],
        help_text=SCHEDULE_HELP["queue"],
    )
    priority = _optional_int("priority", "priority")
    enabled = StrictBooleanField(required=False, help_text=SCHEDULE_HELP["enabled"])
    misfirePolicy = serializers.ChoiceField(
        MisfirePolicy.choices,
        source="misfire_policy",
        required=False,
        help_text=SCHEDULE_HELP["misfirePolicy"],
    )
    catchUpLimit = _optional_int("catchUpLimit", "catch_up_limit")
    jitter = _optional_int("jitter", "jitter_ms")

    @classmethod
    def api_names(cls) -> dict[str, str]:
        """Model field name -> API field name, to name fields in the service's errors as the API does."""
        return {field.source: name for name, field in cls().fields.items()}
