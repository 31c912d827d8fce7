"""StrictSerializer leaves left-out fields out of DRF's loop: it must validate exactly as DRF."""

from __future__ import annotations

import copy
import itertools
from typing import Any

import pytest
from django.http import QueryDict
from rest_framework import serializers

from dlq.api.serializers import BulkReplaySerializer
from jobs.api.serializers import (
    MAX_BATCH,
    ActionSerializer,
    JobBatchSerializer,
    JobCreateSerializer,
    QueueSettingsUpdateSerializer,
    StrictSerializer,
)
from scheduler.api.serializers import ScheduleWriteSerializer


class Defaults(StrictSerializer):
    """Falsy defaults: DRF keeps them for a left-out field, so the fast path must too."""

    none = serializers.IntegerField(required=False, allow_null=True, default=None)
    zero = serializers.IntegerField(required=False, default=0)
    false = serializers.BooleanField(required=False, default=False)
    empty_text = serializers.CharField(required=False, allow_blank=True, default="")
    called = serializers.ListField(required=False, default=list)
    plain = serializers.IntegerField(required=False)
    needed = serializers.CharField()


STRICT = [
    Defaults,
    JobCreateSerializer,
    ScheduleWriteSerializer,
    QueueSettingsUpdateSerializer,
    BulkReplaySerializer,
    ActionSerializer,
]
SAMPLES: list[Any] = [
    None,
    "",
    "x",
    "taskforge.noop",
    0,
    1,
    -5,
    2.5,
    True,
    {"a": 1},
    [1],
    "2026-01-01T00:00:00Z",
]


def _plain_twin(cls: type[serializers.Serializer]) -> type[serializers.Serializer]:
    """The same fields and validate methods on DRF's own Serializer."""
    attrs = {
        name: getattr(cls, name)
        for name in dir(cls)
        if name.startswith("validate") and name != "validated_data"
    }
    return type(
        f"Plain{cls.__name__}", (serializers.Serializer,), {**copy.deepcopy(cls._declared_fields), **attrs}
    )


def _outcome(cls: type[serializers.Serializer], body: dict[str, Any], partial: bool) -> tuple[Any, ...]:
    serializer = cls(data=body, partial=partial)
    valid = serializer.is_valid()
    return valid, serializer.errors, dict(serializer.validated_data) if valid else None


def _bodies(cls: type[serializers.Serializer]) -> list[dict[str, Any]]:
    names = list(cls._declared_fields)
    bodies: list[dict[str, Any]] = [{}]
    bodies += [{name: value} for name in names for value in SAMPLES]
    bodies += [
        dict(pair)
        for pair in itertools.combinations([(n, SAMPLES[i % len(SAMPLES)]) for i, n in enumerate(names)], 2)
    ]
    return bodies


@pytest.mark.parametrize("partial", [False, True])
@pytest.mark.parametrize("cls", STRICT, ids=lambda cls: cls.__name__)
def test_validates_every_body_of_known_fields_exactly_as_drf_does(cls: type, partial: bool) -> None:
    plain = _plain_twin(cls)
    for body in _bodies(cls):
        assert _outcome(cls, body, partial) == _outcome(plain, body, partial), body


def test_a_left_out_field_with_a_default_still_gets_it() -> None:
    serializer = JobCreateSerializer(data={"jobType": "taskforge.noop"})
    assert serializer.is_valid(), serializer.errors
    assert serializer.validated_data == {"jobType": "taskforge.noop", "payload": {}}


def test_a_batch_validates_its_items_exactly_as_drf_does() -> None:
    plain_batch = type(
        "PlainBatch",
        (serializers.Serializer,),
        {"jobs": _plain_twin(JobCreateSerializer)(many=True, allow_empty=False, max_length=MAX_BATCH)},
    )
    items = _bodies(JobCreateSerializer)
    for start in range(0, len(items), 7):  # batches mixing valid and invalid items
        body = {"jobs": items[start : start + 7]}
        assert _outcome(JobBatchSerializer, body, False) == _outcome(plain_batch, body, False), body


def test_form_input_gets_drf_s_form_defaults() -> None:
    body = QueryDict("jobType=taskforge.noop")
    plain = _plain_twin(JobCreateSerializer)
    assert _outcome(JobCreateSerializer, body, False) == _outcome(plain, body, False)
