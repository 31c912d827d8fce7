"""The DLQ's JSON shapes."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from dlq.models import DeadLetter
from jobs.api.serializers import CamelModelSerializer, JobSerializer, StrictCharField, StrictSerializer

MAX_REPLAY_IDS = 10_000


class DeadLetterSerializer(CamelModelSerializer):
    """One dead letter: why the job failed and a copy of what it was asked to do."""

    class Meta:
        model = DeadLetter
        fields = [
            "job_id", "queue", "job_type", "payload", "reason", "last_error", "attempts",
            "failed_at", "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = fields


class DeadLetterDetailSerializer(DeadLetterSerializer):
    """A dead letter with its job."""

    job = JobSerializer(read_only=True)

    class Meta(DeadLetterSerializer.Meta):
        fields = [*DeadLetterSerializer.Meta.fields, "job"]
        read_only_fields = fields


class BulkReplaySerializer(StrictSerializer):
    """Body of POST /dlq/replay: explicit ids, or a filter (an empty body replays nothing)."""

    ids = serializers.ListField(child=serializers.UUIDField(), required=False, max_length=MAX_REPLAY_IDS)
    queue = StrictCharField(required=False, max_length=100)
    jobType = StrictCharField(required=False, max_length=200)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "ids" in attrs and ({"queue", "jobType"} & set(attrs)):
            raise serializers.ValidationError({"ids": ["Give ids or a filter (queue, jobType), not both."]})
        if not attrs:
            raise serializers.ValidationError({"ids": ["Give ids, or a queue and/or jobType filter."]})
        return attrs
