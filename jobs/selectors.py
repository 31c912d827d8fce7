"""Reads: listings and summaries for the API and the admin."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import redis
from django.db.models import Count, Q, QuerySet

from jobs.models import Job, JobEvent
from jobs.states import JobState
from workers import broker


@dataclass(frozen=True)
class JobFilter:
    """Filters of GET /jobs; every field optional."""

    state: str | None = None
    queue: str | None = None
    job_type: str | None = None
    q: str | None = None


def _as_uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def job_queryset(flt: JobFilter) -> QuerySet[Job]:
    """Jobs matching the filter, newest first. `q` matches an id or an idempotency key."""
    qs = Job.objects.all()
    if flt.state:
        qs = qs.filter(state=flt.state)
    if flt.queue:
        qs = qs.filter(queue=flt.queue)
    if flt.job_type:
        qs = qs.filter(job_type=flt.job_type)
    if flt.q:
        as_id = _as_uuid(flt.q)
        qs = qs.filter(Q(idempotency_key=flt.q) | Q(id=as_id)) if as_id else qs.filter(idempotency_key=flt.q)
    return qs.order_by("-created_at", "-id")


def job_page(flt: JobFilter, *, limit: int, offset: int) -> tuple[list[Job], int]:
    """One page of jobs and the total that match."""
    qs = job_queryset(flt)
    return list(qs[offset : offset + limit]), qs.count()


def get_job(job_id: str) -> Job | None:
    """The job with this id, or None (also for a malformed id)."""
    as_id = _as_uuid(job_id)
    return Job.objects.filter(id=as_id).first() if as_id else None


def job_events(job: Job) -> list[JobEvent]:
    """A job's history, oldest first."""
    return list(JobEvent.objects.filter(job=job).order_by("id"))


def queue_summaries() -> list[dict]:
    """Every queue with its job counts by state (queues known to Redis but empty included)."""
    counts: dict[str, dict[str, int]] = {}
    for row in Job.objects.values("queue", "state").annotate(n=Count("id")).order_by():
        counts.setdefault(row["queue"], {s: 0 for s in JobState})[row["state"]] = row["n"]
    try:
        for name in broker.known_queues():
            counts.setdefault(name, {s: 0 for s in JobState})
    except redis.RedisError:  # Redis being down must not break a read of Postgres
        pass
    return [
        {
            "name": name,
            "depth": by_state[JobState.QUEUED],
            "counts": by_state,
            "total": sum(by_state.values()),
        }
        for name, by_state in sorted(counts.items())
    ]
