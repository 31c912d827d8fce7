"""OpenAPI-only shapes of the schedules API (see jobs/api/schema.py)."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter

from jobs.api.schema import page_of
from scheduler.api.serializers import ScheduleSerializer

SchedulePageSerializer = page_of(ScheduleSerializer, "SchedulePage")

SCHEDULE_ID = OpenApiParameter(
    "id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="The schedule's id."
)

CREATE_EXAMPLES = [
    OpenApiExample(
        "Every five minutes",
        value={"name": "cleanup", "cron": "*/5 * * * *", "jobType": "taskforge.noop"},
        request_only=True,
    ),
    OpenApiExample(
        "Weekdays at 09:00 in Berlin",
        value={
            "name": "morning-report",
            "cron": "0 9 * * 1-5",
            "timezone": "Europe/Berlin",
            "jobType": "taskforge.echo",
            "payload": {"report": "daily"},
            "queue": "reports",
            "misfirePolicy": "catch_up",
            "catchUpLimit": 3,
            "jitter": 30000,
        },
        request_only=True,
    ),
]
