"""Reads: listings and summaries for the API and the admin."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis
from django.contrib.postgres.expressions import ArraySubquery
from django.db import connection, models
from django.db.models import Count, OuterRef, Q, QuerySet
from django.db.models.functions import JSONObject
from django.utils import timezone

from dlq.models import DeadLetter
from jobs import sql
from jobs.models import Job, JobEvent, QueueSettings
from jobs.states import ACTIVE_STATES, JobState
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
        qs = qs.filter(id_or_key(flt.q))
    return qs.order_by("-created_at", "-id")


def id_or_key(term: str) -> Q:
    """Jobs whose id or idempotency key is `term` (the API's `q` and the admin's search)."""
    as_id = _as_uuid(term)
    return Q(idempotency_key=term) | Q(id=as_id) if as_id else Q(idempotency_key=term)


def estimated_row_count(model: type[models.Model]) -> int:
    """The planner's row estimate for a model's table: free, unlike count(*) over a million rows."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass", [model._meta.db_table]
        )
        return max(cursor.fetchone()[0], 0)  # -1 until the table is first analyzed


def recent_job_types(*, rows: int = 10_000) -> list[str]:
    """Job types among the newest `rows` jobs: a bounded index scan, not a DISTINCT over all."""
    return sorted(set(Job.objects.order_by("-created_at").values_list("job_type", flat=True)[:rows]))


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


_EVENT_FIELDS = ("id", "type", "at", "attempt", "worker_id", "details")


def job_with_history(job_id: str) -> tuple[Job, list[JobEvent]] | None:
    """The job and its history from one statement, so one snapshot: read one after the other,
    a transition committed in between shows a RUNNING job beside the failure that ended it."""
    as_id = _as_uuid(job_id)
    history = ArraySubquery(
        JobEvent.objects.filter(job=OuterRef("pk"))
        .order_by("id")
        .values(json=JSONObject(**{name: name for name in _EVENT_FIELDS}))
    )
    job = Job.objects.filter(id=as_id).annotate(history=history).first() if as_id else None
    if job is None:
        return None
    events = [
        JobEvent(job_id=job.id, **{**event, "at": datetime.fromisoformat(event["at"])})
        for event in job.history
    ]
    return job, events


@dataclass(frozen=True)
class QueueCounts:
    """Jobs by queue and state: live for active states and the DLQ, cached for finished ones."""

    by_queue: dict[str, dict[str, int]]
    finished_as_of: float | None
    redis_available: bool


def queue_counts() -> QueueCounts:
    """Counts without touching finished rows (they are most of the table)."""
    by_queue: dict[str, dict[str, int]] = {}

    def add(queue: str, state: str, n: int) -> None:
        by_queue.setdefault(queue, dict.fromkeys(JobState.values, 0))[state] = n

    active = Job.objects.filter(state__in=ACTIVE_STATES).values_list("queue", "state")
    # count(*), not count(id): the count is then an index-only scan of jobs_active_idx.
    for queue, state, n in active.annotate(n=Count("*")).order_by():
        add(queue, state, n)
    for queue, n in DeadLetter.objects.values_list("queue").annotate(n=Count("job_id")).order_by():
        add(queue, JobState.DLQ, n)
    for queue in QueueSettings.objects.values_list("name", flat=True):
        by_queue.setdefault(queue, dict.fromkeys(JobState.values, 0))
    try:
        finished, as_of = broker.finished_counts()
        for queue in broker.known_queues():
            by_queue.setdefault(queue, dict.fromkeys(JobState.values, 0))
    except redis.RedisError:  # Redis being down must not break a read of Postgres
        return QueueCounts(by_queue, None, redis_available=False)
    for (queue, state), n in finished.items():
        add(queue, state, n)
    return QueueCounts(by_queue, as_of, redis_available=True)


def queue_settings_fields() -> dict[str, dict[str, Any]]:
    """Operator settings per queue, as the API shows them (queues without settings: absent)."""
    return {
        row.name: {
            "paused": row.paused,
            "rateLimitPerSec": row.rate_limit_per_sec,
            "concurrencyLimit": row.concurrency_limit,
        }
        for row in QueueSettings.objects.all()
    }


NO_SETTINGS = {"paused": False, "rateLimitPerSec": None, "concurrencyLimit": None}


def queue_summaries() -> list[dict]:
    """Every queue with its job counts by state, depth (QUEUED) and whether it is paused."""
    counts = queue_counts()
    settings_of = queue_settings_fields()
    return [
        {
            "name": name,
            **settings_of.get(name, NO_SETTINGS),
            "depth": by_state[JobState.QUEUED],
            "counts": by_state,
            "total": sum(by_state.values()),
        }
        for name, by_state in sorted(counts.by_queue.items())
    ]


def _windows(now_counts: dict, hour_counts: dict, queue: str | None) -> dict[str, dict[str, int]]:
    def total(counts: dict, outcome: str) -> int:
        return sum(n for (q, o), n in counts.items() if o == outcome and queue in (None, q))

    return {
        outcome: {"lastMinute": total(now_counts, outcome), "lastHour": total(hour_counts, outcome)}
        for outcome in ("succeeded", "failed")
    }


def cluster_stats(*, worker_max_age_seconds: float) -> dict:
    """GET /stats: per queue and in total; cheap on any table size (indexes and Redis only)."""
    counts = queue_counts()
    settings_of = queue_settings_fields()
    names = sorted(counts.by_queue)
    oldest = {row["queue"]: row["oldest"] for row in sql.fetch(sql.OLDEST_QUEUED, {"queues": names})}
    now = timezone.now()
    try:
        last_minute, last_hour = broker.throughput(1), broker.throughput(60)
        workers = broker.online_workers(worker_max_age_seconds)
    except redis.RedisError:
        last_minute, last_hour, workers = {}, {}, []

    def age(queue_oldest: list) -> float | None:
        known = [t for t in queue_oldest if t is not None]
        return round((now - min(known)).total_seconds(), 3) if known else None

    def slots(queue: str | None) -> dict[str, int]:
        serving = [
            w
            for w in workers
            if queue is None or w.get("queues") in ("*", None) or queue in w["queues"].split(",")
        ]
        return {
            "online": len(serving),
            "busySlots": sum(int(w.get("busy", 0)) for w in serving),
            "totalSlots": sum(int(w.get("slots", 0)) for w in serving),
        }

    queues = [
        {
            "name": name,
            **settings_of.get(name, NO_SETTINGS),
            "counts": counts.by_queue[name],
            "dlq": counts.by_queue[name][JobState.DLQ],
            "oldestQueuedAgeSeconds": age([oldest.get(name)]),
            "workers": slots(name),
            **_windows(last_minute, last_hour, name),
        }
        for name in names
    ]
    totals = {state: sum(q["counts"][state] for q in queues) for state in JobState.values}
    return {
        "queues": queues,
        "total": {
            "counts": totals,
            "dlq": totals[JobState.DLQ],
            "oldestQueuedAgeSeconds": age(list(oldest.values())),
            "workers": slots(None),
            **_windows(last_minute, last_hour, None),
        },
        "workers": [
            {
                "id": w.get("id"),
                "host": w.get("host"),
                "pid": int(w["pid"]) if w.get("pid") else None,
                "queues": w.get("queues", "*").split(","),
                "slots": int(w.get("slots", 0)),
                "busy": int(w.get("busy", 0)),
            }
            for w in workers
        ],
        "finishedCountsAsOf": (
            datetime.fromtimestamp(counts.finished_as_of, UTC).isoformat() if counts.finished_as_of else None
        ),
        "redisAvailable": counts.redis_available,
    }


def dashboard(*, worker_max_age_seconds: float, minutes: int = 60) -> dict:
    """The ops dashboard: cluster_stats, plus succeeded/failed per minute over the last `minutes`
    (oldest first) and each online worker's last heartbeat."""
    stats = cluster_stats(worker_max_age_seconds=worker_max_age_seconds)
    try:
        series = broker.throughput_by_minute(minutes)
        workers = broker.online_workers(worker_max_age_seconds)
    except redis.RedisError:
        series, workers = [], []

    def total(counts: dict[tuple[str, str], int], outcome: str) -> int:
        return sum(n for (_, o), n in counts.items() if o == outcome)

    return {
        **stats,
        "throughput": [
            {
                "minute": datetime.fromtimestamp(minute * 60, UTC),
                "succeeded": total(counts, "succeeded"),
                "failed": total(counts, "failed"),
            }
            for minute, counts in series
        ],
        "workerRows": [
            {
                "id": w.get("id"),
                "host": w.get("host"),
                "pid": w.get("pid"),
                "queues": w.get("queues", "*"),
                "busy": int(w.get("busy", 0)),
                "slots": int(w.get("slots", 0)),
                "lastSeen": datetime.fromtimestamp(float(w["last_seen"]), UTC),
            }
            for w in workers
        ],
    }
