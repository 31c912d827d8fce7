"""The DLQ API: list and inspect dead letters, replay one, many or all that match."""

from __future__ import annotations

from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response

from dlq import selectors, services
from dlq.api.serializers import BulkReplaySerializer, DeadLetterDetailSerializer, DeadLetterSerializer
from jobs.api.serializers import JobSerializer
from jobs.api.views import actor_of, page_envelope, text_param, validated


class DeadLetterViewSet(viewsets.ViewSet):
    """Dead-lettered jobs, kept in Postgres until replayed."""

    lookup_value_regex = "[^/]+"

    def list(self, request: Request) -> Response:
        queue, job_type = text_param(request, "queue"), text_param(request, "jobType")
        return page_envelope(
            request,
            lambda **bounds: selectors.dead_letter_page(queue=queue, job_type=job_type, **bounds),
            DeadLetterSerializer,
        )

    def retrieve(self, request: Request, pk: str) -> Response:
        letter = selectors.get_dead_letter(pk)
        if letter is None:
            raise NotFound("No dead letter for this job id.")
        return Response(DeadLetterDetailSerializer(letter).data)

    @action(detail=True, methods=["post"], url_path="replay")
    def replay_one(self, request: Request, pk: str) -> Response:
        return Response(JobSerializer(services.replay_dead_letter(pk, actor=actor_of(request))).data)

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
