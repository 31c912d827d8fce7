"""Job output renders datetimes exactly as DRF's DateTimeField would (CamelModelSerializer's fast path)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from django.test import override_settings
from django.utils import timezone as django_timezone
from rest_framework import serializers

from jobs.api.serializers import JobSerializer
from jobs.models import Job

MOMENTS = [
    datetime(2026, 11, 28, 6, 30, 1, 123456, tzinfo=UTC),
    datetime(2026, 3, 29, 1, 30, tzinfo=UTC),  # the hour Paris springs forward
    datetime(2026, 7, 1, 12, 0, tzinfo=timezone(timedelta(hours=-7))),  # stored with another offset
    datetime(1, 1, 1, 0, 0, tzinfo=UTC),
]


@pytest.mark.parametrize("zone", ["UTC", "Europe/Paris", "Asia/Kolkata", "America/New_York"])
@pytest.mark.parametrize("moment", MOMENTS, ids=str)
def test_datetimes_render_as_drf_renders_them(zone: str, moment: datetime) -> None:
    job = Job(id=uuid.uuid4(), queue="q", job_type="t", payload={}, state="QUEUED", created_at=moment)
    job.updated_at = job.queued_at = moment
    with django_timezone.override(zone):
        try:
            expected = serializers.DateTimeField().to_representation(moment)
        except serializers.ValidationError:  # out of range once moved to the zone: DRF says so
            with pytest.raises(serializers.ValidationError):
                JobSerializer(job).data  # noqa: B018
            return
        data = JobSerializer(job).data
    assert data["createdAt"] == data["updatedAt"] == data["queuedAt"] == expected
    assert data["startedAt"] is None


class _OwnFormat(JobSerializer):
    created_at = serializers.DateTimeField(format="%Y-%m")

    class Meta(JobSerializer.Meta):
        pass


@pytest.mark.parametrize(
    "overrides",
    [{"USE_TZ": False}, {"REST_FRAMEWORK": {"DATETIME_FORMAT": "%Y"}}, {}],
    ids=["USE_TZ off", "DRF format", "defaults"],
)
def test_settings_and_naive_values_keep_drf_s_own_rendering(overrides: dict) -> None:
    aware, naive = MOMENTS[0], MOMENTS[0].replace(tzinfo=None)
    job = Job(id=uuid.uuid4(), queue="q", job_type="t", payload={}, state="QUEUED", created_at=aware)
    job.updated_at, job.queued_at = naive, aware
    # Not UTC: a naive value read as the machine's local time would show.
    with override_settings(**overrides), django_timezone.override("Asia/Kolkata"):
        field = serializers.DateTimeField()
        data = JobSerializer(job).data
        assert data["createdAt"] == data["queuedAt"] == field.to_representation(aware)
        assert data["updatedAt"] == field.to_representation(naive)
        assert _OwnFormat(job).data["createdAt"] == "2026-11"
