"""OpenAPI-only shapes of the DLQ API (see jobs/api/schema.py)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter
from rest_framework import serializers

from dlq.api.serializers import DeadLetterSerializer
from jobs.api.schema import PAGE_PARAMETERS, page_of

DeadLetterPageSerializer = page_of(DeadLetterSerializer, "DeadLetterPage")

DEAD_LETTER_FILTERS = [
    OpenApiParameter("queue", str, description="Only dead letters of this queue."),
    OpenApiParameter("jobType", str, description="Only dead letters of this job type."),
    *PAGE_PARAMETERS,
]


class ReplayResultSerializer(serializers.Serializer):
    """Response of POST /dlq/replay."""

    replayed = serializers.IntegerField(help_text="Dead letters moved back to QUEUED by this request.")
