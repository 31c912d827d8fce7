"""Periodic schedule reads for the API and the admin."""

from __future__ import annotations

import uuid

from scheduler.models import PeriodicSchedule


def schedule_page(*, limit: int, offset: int) -> tuple[list[PeriodicSchedule], int]:
    """One page of schedules by name, and how many there are."""
    qs = PeriodicSchedule.objects.order_by("name")
    return list(qs[offset : offset + limit]), qs.count()


def get_schedule(schedule_id: str) -> PeriodicSchedule | None:
    """The schedule with this id, or None (also for a malformed id)."""
    try:
        as_id = uuid.UUID(schedule_id)
    except ValueError:
        return None
    return PeriodicSchedule.objects.filter(id=as_id).first()
