"""The periodic schedules API: thin views over scheduler.schedules (writes) and scheduler.selectors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response

from jobs.api.schema import PAGE_PARAMETERS
from jobs.api.serializers import JobSerializer
from jobs.api.views import actor_of, page_envelope, validated
from jobs.errors import TaskForgeError
from scheduler import schedules, selectors
from scheduler.api import schema
from scheduler.api.serializers import ScheduleSerializer, ScheduleWriteSerializer
from scheduler.models import PeriodicSchedule
from taskforge_site.openapi import error_response

API_NAMES = ScheduleWriteSerializer.api_names()


@contextmanager
def _api_field_names() -> Iterator[None]:
    """The service names fields as the model does; the API's errors name them as the API does."""
    try:
        yield
    except TaskForgeError as exc:
        details = {API_NAMES.get(name, name): value for name, value in exc.details.items()}
        raise type(exc)(exc.message, details) from None


class ScheduleViewSet(viewsets.ViewSet):
    """Periodic schedules: a job enqueued at every tick of a cron expression."""

    lookup_value_regex = "[^/]+"

    @extend_schema(
        summary="List periodic schedules by name",
        parameters=PAGE_PARAMETERS,
        responses=schema.SchedulePageSerializer,
    )
    def list(self, request: Request) -> Response:
        return page_envelope(request, selectors.schedule_page, ScheduleSerializer)

    @extend_schema(
        summary="Create a periodic schedule",
        request=ScheduleWriteSerializer,
        examples=schema.CREATE_EXAMPLES,
        responses={201: OpenApiResponse(ScheduleSerializer, description="Created; Location names it.")},
    )
    def create(self, request: Request) -> Response:
        data = validated(ScheduleWriteSerializer, request.data)
        with _api_field_names():
            schedule = schedules.create_schedule(PeriodicSchedule(**data))
        return Response(
            ScheduleSerializer(schedule).data,
            status=status.HTTP_201_CREATED,
            headers={"Location": f"/schedules/{schedule.id}"},
        )

    @extend_schema(
        summary="One periodic schedule", parameters=[schema.SCHEDULE_ID], responses=ScheduleSerializer
    )
    def retrieve(self, request: Request, pk: str) -> Response:
        schedule = selectors.get_schedule(pk)
        if schedule is None:
            raise NotFound("No schedule with this id.")
        return Response(ScheduleSerializer(schedule).data)

    @extend_schema(
        summary="Change some fields of a periodic schedule",
        description="A new cron, timezone or enabling restarts the ticks from now. On a schedule "
        "declared in code, only `enabled` can change.",
        request=ScheduleWriteSerializer,
        parameters=[schema.SCHEDULE_ID],
        responses=ScheduleSerializer,
    )
    def partial_update(self, request: Request, pk: str) -> Response:
        serializer = ScheduleWriteSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        with _api_field_names():
            schedule = schedules.update_schedule(pk, serializer.validated_data)
        return Response(ScheduleSerializer(schedule).data)

    @extend_schema(
        summary="Delete a periodic schedule (its jobs stay)",
        parameters=[schema.SCHEDULE_ID],
        responses={
            204: OpenApiResponse(description="Deleted."),
            409: error_response("invalid_state_transition: the schedule is declared in code."),
        },
    )
    def destroy(self, request: Request, pk: str) -> Response:
        schedules.delete_schedule(pk)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        summary="Run now: enqueue one job at once, outside the ticks",
        request=None,
        parameters=[schema.SCHEDULE_ID],
        responses={201: OpenApiResponse(JobSerializer, description="The new job; Location names it.")},
    )
    @action(detail=True, methods=["post"])
    def run(self, request: Request, pk: str) -> Response:
        job = schedules.run_schedule_now(pk, actor=actor_of(request))
        return Response(
            JobSerializer(job).data, status=status.HTTP_201_CREATED, headers={"Location": f"/jobs/{job.id}"}
        )
