"""The jobs and queues API: thin views over jobs.services (writes) and jobs.selectors (reads)."""

from __future__ import annotations

from typing import Any

import redis
from django.conf import settings
from django.db import connection
from django.db.utils import DatabaseError
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from dlq import services as dlq_services
from jobs import selectors, services
from jobs.api import schema
from jobs.api.serializers import (
    ActionSerializer,
    JobBatchSerializer,
    JobCreateSerializer,
    JobEventSerializer,
    JobSerializer,
    QueueSettingsUpdateSerializer,
)
from jobs.errors import DependencyNotReady, JobValidationError
from jobs.selectors import JobFilter
from jobs.states import JobState
from taskforge_site.openapi import error_response
from workers import broker

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
MAX_OFFSET = 2**63 - 1  # Postgres' OFFSET is a bigint


def _int_param(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise JobValidationError(f"{name} must be an integer.", {name: ["Must be an integer."]}) from None


def _page_bounds(request: Request) -> tuple[int, int]:
    """limit defaults to 50 and clamps to 1..200; offset clamps to 0..MAX_OFFSET."""
    limit = min(max(_int_param(request, "limit", DEFAULT_LIMIT), 1), MAX_LIMIT)
    return limit, min(max(_int_param(request, "offset", 0), 0), MAX_OFFSET)


def _state_param(request: Request) -> str | None:
    raw = request.query_params.get("state") or request.query_params.get("status")
    if not raw:
        return None
    if raw.upper() not in JobState.values:
        raise JobValidationError(
            f"Unknown state {raw!r}.", {"state": [f"Must be one of {', '.join(JobState.values)}."]}
        )
    return raw.upper()


def text_param(request: Request, name: str) -> str | None:
    """A text filter from the query string (None when absent or empty)."""
    value = request.query_params.get(name) or None
    if value is not None and "\x00" in value:  # Postgres text cannot hold NUL
        raise JobValidationError(f"{name} contains a NUL character.", {name: ["Must not contain NUL."]})
    return value


def page_envelope(request: Request, page: Any, serializer_class: type[serializers.Serializer]) -> Response:
    """`{items, total, limit, offset}` for any selector taking limit/offset."""
    limit, offset = _page_bounds(request)
    items, total = page(limit=limit, offset=offset)
    return Response(
        {"items": serializer_class(items, many=True).data, "total": total, "limit": limit, "offset": offset}
    )


def actor_of(request: Request) -> str | None:
    """Who acts, for the audit trail in job events."""
    user = getattr(request, "user", None)
    return user.get_username() if user is not None and user.is_authenticated else None


def _page(request: Request, flt: JobFilter) -> Response:
    if "\x00" in (flt.queue or ""):
        raise JobValidationError("queue contains a NUL character.", {"queue": ["Must not contain NUL."]})
    return page_envelope(request, lambda **bounds: selectors.job_page(flt, **bounds), JobSerializer)


def _job_or_404(pk: str) -> Any:
    job = selectors.get_job(pk)
    if job is None:
        raise NotFound("No job with this id.")
    return job


def validated(serializer_class: type[serializers.Serializer], data: Any) -> dict[str, Any]:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class JobViewSet(viewsets.ViewSet):
    """Submit jobs, list them, read one and its history."""

    lookup_value_regex = "[^/]+"

    @extend_schema(
        summary="List jobs, newest first", parameters=schema.JOB_FILTERS, responses=schema.JobPageSerializer
    )
    def list(self, request: Request) -> Response:
        flt = JobFilter(
            state=_state_param(request),
            queue=text_param(request, "queue"),
            job_type=text_param(request, "jobType"),
            q=text_param(request, "q"),
        )
        return _page(request, flt)

    @extend_schema(
        summary="Submit a job",
        request=JobCreateSerializer,
        parameters=[schema.IDEMPOTENCY_KEY],
        examples=schema.CREATE_EXAMPLES,
        responses={
            201: OpenApiResponse(JobSerializer, description="A new job; Location names it."),
            200: OpenApiResponse(
                JobSerializer,
                description="An idempotent repeat: the existing job (Idempotent-Replayed: true).",
            ),
            422: error_response(
                "idempotency_key_reused: the key was used for a different jobType or payload."
            ),
        },
    )
    def create(self, request: Request) -> Response:
        data = validated(JobCreateSerializer, request.data)
        header_key = request.headers.get("Idempotency-Key")
        if header_key is not None:
            if data.get("idempotencyKey", header_key) != header_key:
                raise JobValidationError(
                    "The Idempotency-Key header and idempotencyKey differ.",
                    {"idempotencyKey": ["Differs from the Idempotency-Key header."]},
                )
            data["idempotencyKey"] = header_key  # the service checks its length and content
        result = services.enqueue_jobs([JobCreateSerializer.to_spec(data)])[0]
        body = JobSerializer(result.job).data
        if not result.created:
            return Response(body, status=status.HTTP_200_OK, headers={"Idempotent-Replayed": "true"})
        return Response(body, status=status.HTTP_201_CREATED, headers={"Location": f"/jobs/{result.job.id}"})

    @extend_schema(
        summary="Submit up to 1000 jobs, all or nothing",
        request=JobBatchSerializer,
        responses={
            201: OpenApiResponse(schema.JobBatchResultSerializer, description="At least one job is new."),
            200: OpenApiResponse(schema.JobBatchResultSerializer, description="Every item was a repeat."),
            422: error_response("idempotency_key_reused: details.index names the item."),
        },
    )
    @action(detail=False, methods=["post"])
    def batch(self, request: Request) -> Response:
        data = validated(JobBatchSerializer, request.data)
        results = services.enqueue_jobs([JobCreateSerializer.to_spec(item) for item in data["jobs"]])
        created = sum(r.created for r in results)
        return Response(
            {
                "items": JobSerializer([r.job for r in results], many=True).data,
                "created": created,
                "replayed": len(results) - created,
            },
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )

    @extend_schema(summary="One job", parameters=[schema.JOB_ID], responses=JobSerializer)
    def retrieve(self, request: Request, pk: str) -> Response:
        return Response(JobSerializer(_job_or_404(pk)).data)

    @extend_schema(
        summary="A job's history, oldest first",
        parameters=[schema.JOB_ID],
        responses=schema.JobEventListSerializer,
    )
    @action(detail=True, methods=["get"])
    def events(self, request: Request, pk: str) -> Response:
        events = selectors.job_events(_job_or_404(pk))
        return Response({"items": JobEventSerializer(events, many=True).data})

    @schema.job_action("Retry a job now (from RETRYING, DLQ or CANCELED)")
    @action(detail=True, methods=["post"])
    def retry(self, request: Request, pk: str) -> Response:
        reason = validated(ActionSerializer, request.data).get("reason")
        return Response(JobSerializer(services.retry_job(pk, actor=actor_of(request), reason=reason)).data)

    @schema.job_action(
        "Cancel a job",
        ok={
            200: OpenApiResponse(JobSerializer, description="Canceled."),
            202: OpenApiResponse(JobSerializer, description="Running: its handler was asked to stop."),
        },
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str) -> Response:
        """200 when canceled at once; 202 when a running job was asked to stop."""
        reason = validated(ActionSerializer, request.data).get("reason")
        job = services.cancel_job(pk, actor=actor_of(request), reason=reason)
        accepted = job.state == JobState.RUNNING
        return Response(
            JobSerializer(job).data, status=status.HTTP_202_ACCEPTED if accepted else status.HTTP_200_OK
        )

    @schema.job_action("Move a job to the DLQ")
    @action(detail=True, methods=["post"], url_path="dlq")
    def dead_letter(self, request: Request, pk: str) -> Response:
        reason = validated(ActionSerializer, request.data).get("reason")
        return Response(
            JobSerializer(dlq_services.dead_letter_job(pk, actor=actor_of(request), reason=reason)).data
        )


class QueueViewSet(viewsets.ViewSet):
    """Queues and their jobs."""

    lookup_value_regex = "[^/]+"

    @extend_schema(summary="Every queue with its jobs by state", responses=schema.QueueListSerializer)
    def list(self, request: Request) -> Response:
        return Response({"items": selectors.queue_summaries()})

    @extend_schema(
        summary="A queue's jobs, newest first",
        parameters=[schema.QUEUE_NAME, *schema.STATE_PARAMETERS, *schema.PAGE_PARAMETERS],
        responses=schema.JobPageSerializer,
    )
    @action(detail=True, methods=["get"])
    def jobs(self, request: Request, pk: str) -> Response:
        return _page(request, JobFilter(state=_state_param(request), queue=pk))

    @extend_schema(
        summary="One queue: its settings and its jobs by state",
        parameters=[schema.QUEUE_NAME],
        responses=schema.QueueSummarySerializer,
    )
    def retrieve(self, request: Request, pk: str) -> Response:
        summary = next((q for q in selectors.queue_summaries() if q["name"] == pk), None)
        if summary is None:
            raise NotFound("No such queue.")
        return Response(summary)

    @extend_schema(
        summary="Set a queue's cluster-wide rate and concurrency limits",
        request=QueueSettingsUpdateSerializer,
        parameters=[schema.QUEUE_NAME],
        responses=schema.QueueSettingsSerializer,
    )
    def partial_update(self, request: Request, pk: str) -> Response:
        body = validated(QueueSettingsUpdateSerializer, request.data)
        changes = {name: body[key] for key, name in _LIMIT_FIELDS.items() if key in body}
        return _queue_settings(services.update_queue_settings(pk, actor=actor_of(request), **changes))

    @schema.queue_switch("Pause a queue: it accepts jobs, workers claim none")
    @action(detail=True, methods=["post"])
    def pause(self, request: Request, pk: str) -> Response:
        return _queue_settings(services.set_queue_paused(pk, True, actor=actor_of(request)))

    @schema.queue_switch("Resume a paused queue")
    @action(detail=True, methods=["post"])
    def resume(self, request: Request, pk: str) -> Response:
        return _queue_settings(services.set_queue_paused(pk, False, actor=actor_of(request)))


_LIMIT_FIELDS = {"rateLimitPerSec": "rate_limit_per_sec", "concurrencyLimit": "concurrency_limit"}


def _queue_settings(row: Any) -> Response:
    return Response(
        {
            "name": row.name,
            "paused": row.paused,
            "rateLimitPerSec": row.rate_limit_per_sec,
            "concurrencyLimit": row.concurrency_limit,
        }
    )


class StatsView(APIView):
    """Counts by queue and state, throughput, workers, DLQ size and the oldest waiting job."""

    @extend_schema(
        summary="Counts, throughput and workers, per queue and in total", responses=schema.StatsSerializer
    )
    def get(self, request: Request) -> Response:
        max_age = settings.TASKFORGE.lease_seconds  # three missed heartbeats: the worker is gone
        return Response(selectors.cluster_stats(worker_max_age_seconds=max_age))


class HealthView(APIView):
    """Liveness: the process answers."""

    authentication_classes = ()  # probes carry no credentials, and this one must not touch Postgres
    permission_classes = (AllowAny,)

    @extend_schema(summary="Liveness", responses=schema.HealthSerializer)
    def get(self, request: Request) -> Response:
        return Response({"status": "ok"})


class ReadyView(APIView):
    """Readiness: Postgres and Redis both answer; 503 dependency_not_ready names which not."""

    authentication_classes = ()  # probes carry no credentials
    permission_classes = (AllowAny,)

    @extend_schema(
        summary="Readiness: Postgres and Redis answer",
        responses={
            200: schema.ReadySerializer,
            503: error_response("dependency_not_ready: details names each check, as in the 200 body."),
        },
    )
    def get(self, request: Request) -> Response:
        checks: dict[str, str] = {}
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
            checks["postgres"] = "ok"
        except DatabaseError as exc:
            checks["postgres"] = f"error: {type(exc).__name__}"
        try:
            broker.ping()
            checks["redis"] = "ok"
        except redis.RedisError as exc:
            checks["redis"] = f"error: {type(exc).__name__}"
        if any(v != "ok" for v in checks.values()):
            raise DependencyNotReady("A dependency is not ready.", checks)
        return Response({"status": "ready", "checks": checks})
