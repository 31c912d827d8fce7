"""The scheduler loop: one tick every TASKFORGE_SCHEDULER_TICK_SECONDS until stopped."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import redis
from django.db import DatabaseError, connection

from scheduler import schedules, services
from scheduler.services import TickReport
from workers import metrics

logger = logging.getLogger("taskforge.scheduler")


def _step(name: str, func: Callable[[], int | None]) -> int:
    """Runs one duty; a Postgres or Redis outage skips it this tick and never stops the loop."""
    try:
        return func() or 0
    except DatabaseError as exc:
        logger.warning("database error; will retry next tick", extra={"step": name, "error": str(exc)})
        try:
            connection.close()  # reconnect on the next statement
        except DatabaseError:
            pass
    except redis.RedisError as exc:
        logger.warning("redis error; will retry next tick", extra={"step": name, "error": str(exc)})
    except Exception:  # a bug in one duty must not stop the others (or the next tick)
        logger.exception("scheduler step failed; will retry next tick", extra={"step": name})
    return 0


def tick(retention_days: int, misfire_grace_seconds: float = schedules.MISFIRE_GRACE_SECONDS) -> TickReport:
    """One pass over every duty. Re-sync runs first, so a flushed Redis is refilled at once."""
    _step("queue settings", services.sync_queue_settings)
    _step("counts", services.refresh_finished_counts)
    _step("declared schedules", schedules.sync_declarations_once)
    return TickReport(
        resynced=_step("resync", services.resync_if_redis_lost),
        fired=_step("schedules", lambda: schedules.fire_due_schedules(grace_seconds=misfire_grace_seconds)),
        promoted=_step("promote", services.promote_due_jobs),
        expired=_step("expire", services.expire_leases),
        inflight_returned=_step("inflight", services.return_stale_inflight),
        swept=_step("sweep", services.sweep_unpublished),
        pruned=_step("prune", lambda: services.prune_finished_jobs(retention_days)),
    )


def run_scheduler(*, tick_seconds: float, retention_days: int, stop: threading.Event) -> int:
    """Ticks until `stop` is set; returns the exit code."""
    logger.info("scheduler started", extra={"tick_seconds": tick_seconds})
    flusher = metrics.Flusher()  # lease timeouts reach /metrics within a second
    flusher.start()
    while not stop.is_set():
        started = time.monotonic()
        report = tick(retention_days, schedules.misfire_grace_seconds(tick_seconds))
        if report.any():
            logger.info("tick", extra=vars(report))
        stop.wait(max(tick_seconds - (time.monotonic() - started), 0))
    flusher.stop()
    connection.close()
    logger.info("scheduler stopped")
    return 0
