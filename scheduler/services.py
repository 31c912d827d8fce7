"""The scheduler's duties, each safe with several schedulers running at once.

Every step is a guarded statement with SKIP LOCKED (Postgres) or an idempotent ZADD (Redis).
Redis locks only keep periodic chores (re-sync, sweep, counts, pruning) from being done by
every scheduler at once; losing one costs duplicate work, never correctness.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count

from jobs import sql
from jobs.models import Job, QueueSettings
from jobs.services import queue_limits_spec
from jobs.states import JobState
from taskforge_site import tracing
from workers import broker, keys, metrics

logger = logging.getLogger("taskforge.scheduler")

BATCH = 1000
MAX_BATCHES_PER_TICK = 20  # bounds one tick; a bigger backlog is caught up over the next ticks
RESYNC_BATCH = 5000
RESYNC_LOCK = "resync"
RESYNC_LOCK_MS = 120_000
STALE_INFLIGHT_MS = 10_000  # popped but never claimed for this long: the worker died
SWEEP_GRACE_MS = 10_000  # a QUEUED job younger than this may still be on its way to Redis
SWEEP_LOCK = "sweep"
SWEEP_EVERY_MS = 2_000
SWEEP_BATCH = 5000  # a million-job backlog is swept in about 7 minutes
COUNTS_LOCK = "counts"
COUNTS_EVERY_MS = 60_000
PRUNE_LOCK = "prune"
PRUNE_EVERY_MS = 60_000
_START = (datetime.fromisoformat("0001-01-01T00:00:00+00:00"), uuid.UUID(int=0))


def _ready(rows: list[dict]) -> list[broker.ReadyJob]:
    return [broker.ReadyJob.from_row(r) for r in rows if r.get("state", JobState.QUEUED) == JobState.QUEUED]


def _in_batches(query: str, on_rows: Callable[[list[dict]], None] | None = None) -> int:
    """Runs a promote/expire statement until it runs dry (or the tick's budget is spent)."""
    total = 0
    for _ in range(MAX_BATCHES_PER_TICK):
        rows = sql.fetch(query, {"limit": BATCH})
        broker.publish_quietly(_ready(rows))
        if on_rows is not None:
            on_rows(rows)
        total += len(rows)
        if len(rows) < BATCH:
            break
    return total


def promote_due_jobs() -> int:
    """PENDING/RETRYING jobs whose time has come -> QUEUED, then into their ready queues."""
    return _in_batches(sql.PROMOTE_DUE_JOBS, on_rows=_trace_promotions)


def _trace_promotions(rows: list[dict]) -> None:
    """A `job.promote` span per traced job: from its move to QUEUED until it is in Redis."""
    if not tracing.enabled():
        return
    for row in rows:
        tracing.record_job_span(
            "job.promote",
            traceparent=row["traceparent"],
            job_id=row["id"],
            queue=row["queue"],
            job_type=row["job_type"],
            attempt=row["attempt_count"] + 1,  # the attempt it is queued for
            start_time_ns=int(row["queued_at"].timestamp() * 1e9),
        )


def expire_leases() -> int:
    """RUNNING jobs with an expired lease -> QUEUED (or DLQ / CANCELED); a failed attempt."""
    return _in_batches(
        sql.EXPIRE_LEASES, on_rows=lambda rows: metrics.record_lease_timeouts(r["queue"] for r in rows)
    )


def return_stale_inflight() -> int:
    """Ids a worker popped and never claimed go back to their ready queue if still QUEUED."""
    ids = broker.take_stale_inflight(STALE_INFLIGHT_MS, BATCH)
    if not ids:
        return 0
    # If this step dies here, the ids are gone from Redis while still QUEUED: the sweep finds them.
    rows = sql.fetch(sql.QUEUED_JOBS_BY_ID, {"ids": ids})
    broker.publish(_ready(rows))
    return len(rows)


def _queued_page(after: tuple[datetime, uuid.UUID], grace_ms: int, limit: int) -> list[dict]:
    return sql.fetch(
        sql.QUEUED_JOBS_PAGE,
        {"grace_ms": grace_ms, "after_at": after[0], "after_id": after[1], "limit": limit},
    )


def resync_if_redis_lost() -> int:
    """When Redis lost its data (no epoch), re-publishes every QUEUED job from Postgres."""
    if broker.epoch_exists():
        return 0
    token = broker.acquire_lock(RESYNC_LOCK, RESYNC_LOCK_MS)
    if token is None:
        return 0  # another scheduler is on it
    try:
        total, after = 0, _START
        while True:
            rows = _queued_page(after, 0, RESYNC_BATCH)
            broker.publish(_ready(rows))
            total += len(rows)
            if len(rows) < RESYNC_BATCH or not broker.extend_lock(RESYNC_LOCK, token, RESYNC_LOCK_MS):
                break  # done, or the lock was lost (Redis restarted?): the next tick starts over
            after = (rows[-1]["queued_at"], rows[-1]["id"])
        if broker.set_epoch_if_locked(RESYNC_LOCK, token):
            logger.info("redis re-synced from postgres", extra={"jobs": total})
        return total
    finally:
        broker.release_lock(RESYNC_LOCK, token)


def sweep_unpublished() -> int:
    """Slow safety net: finds QUEUED jobs in neither a ready queue nor in flight, and publishes them.

    Covers a publish lost between commit and Redis (a crash, a Redis blip) without a full
    re-sync; walks the QUEUED jobs a page at a time, at most one page every 2 s across all
    schedulers, so a standing backlog costs little.
    """
    if broker.acquire_lock(SWEEP_LOCK, SWEEP_EVERY_MS) is None:
        return 0
    r = broker.client()
    raw = r.get(keys.RECONCILE_CURSOR)
    after = _START
    if raw:
        at, _, job_id = raw.partition("|")
        try:
            after = (datetime.fromisoformat(at), uuid.UUID(job_id))
        except ValueError:
            pass  # a damaged cursor restarts the sweep from the beginning
    rows = _queued_page(after, SWEEP_GRACE_MS, SWEEP_BATCH)
    missing = broker.missing_from_redis(_ready(rows))
    if missing:
        # Read again: a worker may have popped, claimed and acknowledged a job between the page
        # read and the Redis check; a claimed job is no longer QUEUED (its claim commits first).
        missing = _ready(sql.fetch(sql.QUEUED_JOBS_BY_ID, {"ids": [job.id for job in missing]}))
    broker.publish(missing)
    if len(rows) < SWEEP_BATCH:
        r.delete(keys.RECONCILE_CURSOR)  # wrap around
    else:
        r.set(keys.RECONCILE_CURSOR, f"{rows[-1]['queued_at'].isoformat()}|{rows[-1]['id']}")
    if missing:
        logger.warning("re-published jobs missing from redis", extra={"jobs": len(missing)})
    return len(missing)


def sync_queue_settings() -> None:
    """Mirrors paused queues and queue limits into Redis (after a flush, or a change it missed)."""
    rows = list(QueueSettings.objects.all())
    limits = {row.name: spec for row in rows if (spec := queue_limits_spec(row))}
    broker.sync_queue_settings([row.name for row in rows if row.paused], limits)


def refresh_finished_counts() -> None:
    """Counts finished jobs by queue and state for GET /stats, once a minute cluster-wide.

    Finished rows are most of the table; counting them per request would scan it each time.
    """
    if broker.acquire_lock(COUNTS_LOCK, COUNTS_EVERY_MS) is None:
        return
    rows = (
        Job.objects.filter(state__in=[JobState.SUCCEEDED, JobState.CANCELED])
        .values_list("queue", "state")
        .annotate(n=Count("id"))
        .order_by()
    )
    broker.store_finished_counts({(queue, state): n for queue, state, n in rows})


def prune_finished_jobs(retention_days: int) -> int:
    """Deletes finished jobs past retention, at most once a minute across all schedulers."""
    if retention_days <= 0 or broker.acquire_lock(PRUNE_LOCK, PRUNE_EVERY_MS) is None:
        return 0
    total = 0
    for _ in range(MAX_BATCHES_PER_TICK):
        deleted = len(sql.fetch(sql.PRUNE_FINISHED_JOBS, {"days": retention_days, "limit": BATCH}))
        total += deleted
        if deleted < BATCH:
            break
    return total


@dataclass
class TickReport:
    """What one tick did."""

    fired: int = 0  # jobs enqueued by periodic schedules
    promoted: int = 0
    expired: int = 0
    inflight_returned: int = 0
    resynced: int = 0
    swept: int = 0
    pruned: int = 0

    def any(self) -> bool:
        return any(vars(self).values())
