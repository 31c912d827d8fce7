"""The DLQ API: list and inspect dead letters, replay one, many or all that match."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response

from dlq import selectors, services
from dlq.api import schema
from dlq.api.serializers import BulkReplaySerializer, DeadLetterDetailSerializer, DeadLetterSerializer
from jobs.api.schema import JOB_ID, job_action
from jobs.api.serializers import JobSerializer
from jobs.api.views import actor_of, page_envelope, text_param, validated


class DeadLetterViewSet(viewsets.ViewSet):
    """Dead-lettered jobs, kept in Postgres until replayed."""

    lookup_value_regex = "[^/]+"

    @extend_schema(
        summary="List dead letters, most recent failure first",
        parameters=schema.DEAD_LETTER_FILTERS,
        responses=schema.DeadLetterPageSerializer,
    )
    def list(self, request: Request) -> Response:
        queue, job_type = text_param(request, "queue"), text_param(request, "jobType")
        return page_envelope(
            request,
            lambda **bounds: selectors.dead_letter_page(queue=queue, job_type=job_type, **bounds),
            DeadLetterSerializer,
        )

    @extend_schema(
        summary="One dead letter, with its job", parameters=[JOB_ID], responses=DeadLetterDetailSerializer
    )
    def retrieve(self, request: Request, pk: str) -> Response:
        letter = selectors.get_dead_letter(pk)
        if letter is None:
            raise NotFound("No dead letter for this job id.")
        return Response(DeadLetterDetailSerializer(letter).data)

    @job_action(
        "Replay one dead letter: its job goes back to QUEUED", request=None, operation_id="dlq_replay"
    )
    @action(detail=True, methods=["post"], url_path="replay")
    def replay_one(self, request: Request, pk: str) -> Response:
        return Response(JobSerializer(services.replay_dead_letter(pk, actor=actor_of(request))).data)

    @extend_schema(
        summary="Replay the given dead letters, or every one matching a filter",
        operation_id="dlq_replay_many",
        request=BulkReplaySerializer,
        responses=schema.ReplayResultSerializer,
    )
    @action(detail=False, methods=["post"], url_path="replay")
    def replay_many(self, request: Request) -> Response:
        """Replays the given ids, or every dead letter matching queue/jobType; safe to repeat."""
        body = validated(BulkReplaySerializer, request.data)
        if "ids" in body:
            replayed = len(services.replay_dead_letters(ids=body["ids"], actor=actor_of(request)))
        else:
            replayed = services.replay_matching(
                queue=body.get("queue"), job_type=body.get("jobType"), actor=actor_of(request)
            )
        return Response({"replayed": replayed})
