"""OpenAPI-only shapes: the bodies the views build by hand, and the shared query parameters.

Nothing here validates or renders a request; keep each shape in step with the view that builds it.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema, extend_schema_serializer
from rest_framework import serializers

from jobs.api.serializers import ActionSerializer, JobEventSerializer, JobSerializer
from jobs.states import JobState
from taskforge_site.openapi import error_response


@extend_schema_serializer(many=False)  # a list action's body, but an object, not an array
class PageSerializer(serializers.Serializer):
    """`{items, total, limit, offset}`: one page of a listing."""

    total = serializers.IntegerField(help_text="How many match the filters, over all pages.")
    limit = serializers.IntegerField(help_text="The page size used, after clamping to 1..200.")
    offset = serializers.IntegerField(help_text="The offset used, after clamping negatives to 0.")


def page_of(item: type[serializers.Serializer], name: str) -> type[PageSerializer]:
    """A PageSerializer whose items are `item`s; `name` names its OpenAPI component."""
    items = item(many=True, help_text="This page, newest first.")
    return type(
        name, (PageSerializer,), {"items": items, "__doc__": f"One page of {name.removesuffix('Page')}s."}
    )


JobPageSerializer = page_of(JobSerializer, "JobPage")


@extend_schema_serializer(many=False)
class JobEventListSerializer(serializers.Serializer):
    """A job's whole history, oldest first."""

    items = JobEventSerializer(many=True)


class JobBatchResultSerializer(serializers.Serializer):
    """Response of POST /jobs/batch: the jobs in request order."""

    items = JobSerializer(many=True, help_text="One job per request item, in the same order.")
    created = serializers.IntegerField(help_text="How many jobs are new.")
    replayed = serializers.IntegerField(help_text="How many items were idempotent repeats of existing jobs.")


class StateCountsSerializer(serializers.Serializer):
    """Jobs per state."""

    def get_fields(self) -> dict[str, serializers.Field]:
        return {state: serializers.IntegerField(min_value=0) for state in JobState.values}


class QueueSettingsFieldsSerializer(serializers.Serializer):
    """A queue's operator settings."""

    paused = serializers.BooleanField(help_text="Workers claim nothing from a paused queue.")
    rateLimitPerSec = serializers.FloatField(
        allow_null=True,
        help_text="Cluster-wide job starts per second (burst: one second's worth); 0: no limit; "
        "null: RATE_LIMIT_PER_SEC applies.",
    )
    concurrencyLimit = serializers.IntegerField(
        allow_null=True, help_text="Cluster-wide cap on this queue's running jobs; null: no limit."
    )


class QueueSummarySerializer(QueueSettingsFieldsSerializer):
    """One queue: its settings and its jobs by state."""

    name = serializers.CharField()
    depth = serializers.IntegerField(help_text="QUEUED jobs: ready, waiting for a worker.")
    counts = StateCountsSerializer()
    total = serializers.IntegerField(help_text="Jobs in every state.")


@extend_schema_serializer(many=False)
class QueueListSerializer(serializers.Serializer):
    """Every queue with a job, a setting, or a ready list in Redis."""

    items = QueueSummarySerializer(many=True)


class QueueSettingsSerializer(QueueSettingsFieldsSerializer):
    """Response of PATCH /queues/{id}, POST /queues/{id}/pause and /resume."""

    name = serializers.CharField()


class WindowSerializer(serializers.Serializer):
    lastMinute = serializers.IntegerField(help_text="In the last 60 seconds.")
    lastHour = serializers.IntegerField(help_text="In the last 60 minutes.")


class SlotsSerializer(serializers.Serializer):
    online = serializers.IntegerField(help_text="Workers with a fresh heartbeat that serve these queues.")
    busySlots = serializers.IntegerField(help_text="Execution slots running a job.")
    totalSlots = serializers.IntegerField(help_text="Execution slots in all.")


class StatsTotalSerializer(serializers.Serializer):
    """Figures over every queue."""

    counts = StateCountsSerializer(help_text="Jobs per state; finished states as of finishedCountsAsOf.")
    dlq = serializers.IntegerField(help_text="Dead letters waiting for an operator.")
    oldestQueuedAgeSeconds = serializers.FloatField(
        allow_null=True, help_text="Seconds the oldest QUEUED job has waited; null when none waits."
    )
    workers = SlotsSerializer()
    succeeded = WindowSerializer(help_text="Jobs that succeeded.")
    failed = WindowSerializer(help_text="Failed attempts.")


class StatsQueueSerializer(StatsTotalSerializer, QueueSettingsFieldsSerializer):
    """Figures of one queue."""

    name = serializers.CharField()


class StatsWorkerSerializer(serializers.Serializer):
    id = serializers.CharField(allow_null=True)
    host = serializers.CharField(allow_null=True)
    pid = serializers.IntegerField(allow_null=True)
    queues = serializers.ListField(
        child=serializers.CharField(), help_text='The queues it serves; ["*"]: all.'
    )
    slots = serializers.IntegerField(help_text="Its execution slots.")
    busy = serializers.IntegerField(help_text="Its slots running a job.")


class StatsSerializer(serializers.Serializer):
    """GET /stats: the cluster at a glance, cheap on any table size."""

    queues = StatsQueueSerializer(many=True)
    total = StatsTotalSerializer()
    workers = StatsWorkerSerializer(many=True, help_text="Workers with a fresh heartbeat.")
    finishedCountsAsOf = serializers.DateTimeField(
        allow_null=True, help_text="When the counts of finished jobs were last refreshed (by a scheduler)."
    )
    redisAvailable = serializers.BooleanField(
        help_text="False: Redis did not answer; its figures are missing."
    )


class HealthSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["ok"])


class ReadyChecksSerializer(serializers.Serializer):
    postgres = serializers.CharField(help_text='"ok", or "error: <exception class>".')
    redis = serializers.CharField(help_text='"ok", or "error: <exception class>".')


class ReadySerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["ready"])
    checks = ReadyChecksSerializer()


JOB_ID = OpenApiParameter("id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="The job's id.")
ACTION_ERRORS = {
    404: error_response("not_found: no job with this id."),
    409: error_response("invalid_state_transition: not allowed from the job's state (details.state)."),
}


def job_action(
    summary: str, *, request: Any = ActionSerializer, ok: Any = JobSerializer, **kwargs: Any
) -> Any:
    """@extend_schema of a POST acting on one job: it answers with the job, or 404 or 409."""
    responses = ok if isinstance(ok, dict) else {200: ok}
    return extend_schema(
        summary=summary,
        request=request,
        parameters=[JOB_ID],
        responses={**responses, **ACTION_ERRORS},
        **kwargs,
    )


QUEUE_NAME = OpenApiParameter("id", str, OpenApiParameter.PATH, description="The queue's name.")


def queue_switch(summary: str) -> Any:
    """@extend_schema of POST /queues/{id}/pause and /resume."""
    return extend_schema(
        summary=summary, request=None, parameters=[QUEUE_NAME], responses=QueueSettingsSerializer
    )


PAGE_PARAMETERS = [
    OpenApiParameter("limit", int, description="Page size: default 50; clamped to 1..200.", default=50),
    OpenApiParameter("offset", int, description="Items to skip: default 0; a negative offset counts as 0."),
]
STATE_PARAMETERS = [
    OpenApiParameter("state", str, enum=JobState.values, description="Only jobs in this state (any case)."),
    OpenApiParameter("status", str, enum=JobState.values, description="Alias of state."),
]
JOB_FILTERS = [
    *STATE_PARAMETERS,
    OpenApiParameter("queue", str, description="Only jobs of this queue."),
    OpenApiParameter("jobType", str, description="Only jobs of this type."),
    OpenApiParameter("q", str, description="An exact job id or idempotency key."),
    *PAGE_PARAMETERS,
]
IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key",
    str,
    OpenApiParameter.HEADER,
    description="Same as the idempotencyKey field; if both are sent they must be equal.",
)

CREATE_EXAMPLES = [
    OpenApiExample(
        "Minimal",
        value={"jobType": "taskforge.echo", "payload": {"hello": "world"}},
        request_only=True,
    ),
    OpenApiExample(
        "Every option",
        value={
            "jobType": "taskforge.sleep",
            "payload": {"seconds": 0.1},
            "queue": "emails",
            "idempotencyKey": "order-42",
            "priority": 10,
            "delay": 2000,
            "maxAttempts": 3,
            "initialDelay": 500,
            "backoff": 2.0,
            "maxDelay": 10000,
            "jitter": True,
            "timeout": 30000,
        },
        request_only=True,
    ),
    OpenApiExample(
        "At a given time",
        value={"jobType": "taskforge.noop", "runAt": "2030-01-01T00:00:00Z"},
        request_only=True,
    ),
]
