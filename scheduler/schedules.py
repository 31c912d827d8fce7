"""Periodic schedules: every write (API, admin, code declarations) and the scheduler's firing.

Each tick of a schedule makes exactly one job, however many schedulers run on however many
hosts, and the database, not a leader, guarantees it: a scheduler locks the due schedules it
fires (`FOR UPDATE SKIP LOCKED`, so two schedulers never fire one schedule at once), then
enqueues the ticks' jobs and advances `next_fire_at` in one transaction, with an UPDATE guarded
by the `next_fire_at` it read. A tick's job carries the idempotency key
`schedule:{name}:{tick in UTC, ISO 8601}`, unique per queue, so even a tick fired twice would
make one job.

A tick that a scheduler reaches more than the misfire grace late was missed (no scheduler ran
then), and the schedule's misfire policy decides what fires; see `plan_fires`.
"""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models.functions import Now

from jobs.errors import (
    DependencyNotReady,
    InvalidStateTransition,
    JobNotFound,
    JobValidationError,
    TaskForgeError,
    UnknownJobType,
)
from jobs.models import Job
from jobs.services import JobSpec, dump_json, enqueue_jobs
from scheduler.cron import Cron, CronError
from scheduler.declarations import Declaration, declared_schedules
from scheduler.models import MisfirePolicy, PeriodicSchedule
from workers.registry import get_handler

logger = logging.getLogger("taskforge.scheduler")

MISFIRE_GRACE_SECONDS = 10.0
FIRE_BATCH = 100  # schedules locked per transaction
MAX_FIRE_BATCHES_PER_TICK = 10  # more due schedules than this wait for the next tick
REPLANNED_BY = ("cron", "timezone", "enabled")  # a change to these restarts the ticks from now


def misfire_grace_seconds(tick_seconds: float) -> float:
    """How late a tick may be reached and still be on time: 10 s, or two scheduler ticks if longer."""
    return max(MISFIRE_GRACE_SECONDS, 2 * tick_seconds)


def tick_key(name: str, fire_time: datetime) -> str:
    """The idempotency key of a tick's job: the tick's identity (its exact time, not the jitter)."""
    return f"schedule:{name}:{fire_time.astimezone(UTC).isoformat()}"


def _db_now() -> datetime:
    """The one clock every process agrees on (docs/conventions.md); the statement's time, as
    Django's Now() writes it, not the start of a transaction that may have waited for a lock."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement_timestamp()")
        return cursor.fetchone()[0]


# ---- firing ------------------------------------------------------------------------------


@dataclass(frozen=True)
class FirePlan:
    """What one schedule does now: a job per tick in `fire_times` (oldest first), then wait."""

    fire_times: list[datetime]
    next_fire_at: datetime
    misfired: bool


def _ticks(cron: Cron, first: datetime, until: datetime, limit: int | None = None) -> Iterator[datetime]:
    """Ticks from `first` (a tick itself) up to `until` inclusive, at most `limit` of them."""
    tick, count = first, 0
    while tick <= until and (limit is None or count < limit):
        yield tick
        tick, count = cron.next_after(tick), count + 1


def plan_fires(schedule: PeriodicSchedule, *, now: datetime, grace_seconds: float) -> FirePlan:
    """The ticks to fire for a schedule whose `next_fire_at` has come.

    On time (its first due tick at most `grace_seconds` old): every due tick fires, so a slow
    scheduler tick never loses one. Otherwise the ticks were missed, and the policy decides:
    `skip` fires none, `run_once` the latest, `catch_up` the oldest `catch_up_limit` (the rest
    are skipped). Either way the schedule then waits for its first tick after `now`.
    """
    cron = Cron.parse(schedule.cron, schedule.timezone)
    due = schedule.next_fire_at
    next_fire_at = cron.next_after(now)
    if due >= now - timedelta(seconds=grace_seconds):
        return FirePlan(list(_ticks(cron, due, now)), next_fire_at, misfired=False)
    if schedule.misfire_policy == MisfirePolicy.SKIP:
        fire_times = []
    elif schedule.misfire_policy == MisfirePolicy.RUN_ONCE:
        fire_times = [cron.previous_before(next_fire_at)]
    else:
        fire_times = list(_ticks(cron, due, now, limit=schedule.catch_up_limit))
    return FirePlan(fire_times, next_fire_at, misfired=True)


def _job_spec(schedule: PeriodicSchedule, key: str, delay_ms: int | None = None) -> JobSpec:
    return JobSpec(
        job_type=schedule.job_type,
        payload=schedule.payload,
        queue=schedule.queue,
        priority=schedule.priority,
        idempotency_key=key,
        delay_ms=delay_ms,
    )


class StaleRead(Exception):
    """The schedule moved after we read it: fire nothing from that read."""


def fire_schedule(schedule: PeriodicSchedule, plan: FirePlan) -> int:
    """Enqueues the plan's jobs and advances the schedule, guarded by the next_fire_at it read."""
    jitter = schedule.jitter_ms
    specs = [
        _job_spec(schedule, tick_key(schedule.name, t), random.randint(0, jitter) if jitter else None)
        for t in plan.fire_times
    ]
    results = enqueue_jobs(specs) if specs else []
    last = {"last_fired_at": plan.fire_times[-1], "last_job_id": results[-1].job.id} if results else {}
    moved = PeriodicSchedule.objects.filter(id=schedule.id, next_fire_at=schedule.next_fire_at).update(
        next_fire_at=plan.next_fire_at, last_error=None, updated_at=Now(), **last
    )
    if moved != 1:  # not while we hold the row lock, but the guard is what makes a tick fire once
        raise StaleRead
    repeats = [r.job.idempotency_key for r in results if not r.created]
    if repeats:
        logger.warning(
            "schedule ticks already had their jobs", extra={"schedule": schedule.name, "keys": repeats}
        )
    if plan.misfired:
        logger.warning(
            "schedule missed ticks",
            extra={
                "schedule": schedule.name,
                "policy": schedule.misfire_policy,
                "missed_since": schedule.next_fire_at.isoformat(),
                "fired": len(results),
            },
        )
    return len(results) - len(repeats)


def _record_problem(schedule: PeriodicSchedule, next_fire_at: datetime | None, error: str) -> None:
    """A tick whose job cannot be enqueued (its handler is gone, its payload too large now) is
    skipped, with the error kept on the schedule, rather than retried every tick; a schedule
    with no next tick is disabled."""
    logger.warning("schedule could not fire", extra={"schedule": schedule.name, "error": error})
    PeriodicSchedule.objects.filter(id=schedule.id, next_fire_at=schedule.next_fire_at).update(
        next_fire_at=next_fire_at, enabled=next_fire_at is not None, last_error=error, updated_at=Now()
    )


def fire_due_schedules(*, grace_seconds: float = MISFIRE_GRACE_SECONDS, now: datetime | None = None) -> int:
    """The scheduler's duty: fires every due tick of every enabled schedule; returns the new jobs.

    `now` is for tests; the scheduler uses the database's clock.
    """
    fired = 0
    for _ in range(MAX_FIRE_BATCHES_PER_TICK):
        with transaction.atomic():
            at = now or _db_now()
            due = list(
                PeriodicSchedule.objects.select_for_update(skip_locked=True)
                .filter(enabled=True, next_fire_at__lte=at)
                .order_by("next_fire_at")[:FIRE_BATCH]
            )
            for schedule in due:
                try:
                    plan = plan_fires(schedule, now=at, grace_seconds=grace_seconds)
                except CronError as exc:  # only a row written around the services gets here
                    _record_problem(schedule, None, str(exc))
                    continue
                try:
                    with transaction.atomic():
                        fired += fire_schedule(schedule, plan)
                except StaleRead:
                    logger.warning("schedule changed while firing", extra={"schedule": schedule.name})
                except DependencyNotReady:
                    raise
                except TaskForgeError as exc:
                    _record_problem(schedule, plan.next_fire_at, exc.message)
        if len(due) < FIRE_BATCH:
            break
    return fired


# ---- writes --------------------------------------------------------------------------------


def validate_schedule(schedule: PeriodicSchedule) -> None:
    """Every field, the job type (registered, as POST /jobs requires) and the payload (jsonb)."""
    try:
        schedule.full_clean(validate_constraints=False)
    except ValidationError as exc:
        raise JobValidationError("Invalid schedule.", exc.message_dict) from None
    if get_handler(schedule.job_type) is None:
        raise UnknownJobType(f"Unknown job type {schedule.job_type!r}.", {"job_type": schedule.job_type})
    dump_json(schedule.payload, "payload", settings.TASKFORGE.max_payload_bytes)


def _save(schedule: PeriodicSchedule, *, replan: bool, create: bool) -> PeriodicSchedule:
    """Validates and saves; `replan` restarts the ticks from now (None while disabled)."""
    validate_schedule(schedule)
    if replan:
        cron = Cron.parse(schedule.cron, schedule.timezone)
        schedule.next_fire_at = cron.next_after(_db_now()) if schedule.enabled else None
    try:
        with transaction.atomic():
            if create:
                schedule.save(force_insert=True)
            else:
                schedule.updated_at = Now()
                schedule.save()
                schedule.refresh_from_db(fields=["updated_at"])
    except IntegrityError:
        if PeriodicSchedule.objects.filter(name=schedule.name).exclude(id=schedule.id).exists():
            raise JobValidationError(
                "Invalid schedule.", {"name": ["A schedule with this name exists."]}
            ) from None
        raise
    return schedule


def create_schedule(schedule: PeriodicSchedule) -> PeriodicSchedule:
    """Saves a new schedule (an unsaved instance); its first tick is the next one after now."""
    return _save(schedule, replan=True, create=True)


def _locked(schedule_id: str | uuid.UUID) -> PeriodicSchedule:
    """The schedule, locked until the caller's transaction ends; 404 also for a malformed id."""
    try:
        as_id = schedule_id if isinstance(schedule_id, uuid.UUID) else uuid.UUID(str(schedule_id))
    except ValueError:
        raise JobNotFound("No schedule with this id.") from None
    schedule = PeriodicSchedule.objects.select_for_update().filter(id=as_id).first()
    if schedule is None:
        raise JobNotFound("No schedule with this id.")
    return schedule


def _apply(schedule: PeriodicSchedule, changes: Mapping[str, Any]) -> PeriodicSchedule:
    changed = {name: value for name, value in changes.items() if getattr(schedule, name) != value}
    for name, value in changed.items():
        setattr(schedule, name, value)
    return _save(schedule, replan=bool(set(changed) & set(REPLANNED_BY)), create=False)


def update_schedule(schedule_id: str | uuid.UUID, changes: Mapping[str, Any]) -> PeriodicSchedule:
    """Changes some fields (model field names). A new cron, timezone or enabling restarts the
    ticks from now: ticks missed while a schedule was disabled never fire."""
    with transaction.atomic():
        schedule = _locked(schedule_id)
        if schedule.declared:
            refused = sorted(
                name
                for name, value in changes.items()
                if name in PeriodicSchedule.CODE_OWNED and getattr(schedule, name) != value
            )
            if refused:
                raise JobValidationError(
                    "This schedule is declared in code: change its declaration instead.",
                    {name: ["Declared in code."] for name in refused},
                )
        return _apply(schedule, changes)


def delete_schedule(schedule_id: str | uuid.UUID) -> None:
    """Deletes a schedule made in the API or the admin; its jobs stay."""
    with transaction.atomic():
        schedule = _locked(schedule_id)
        if schedule.declared:
            raise InvalidStateTransition(
                "This schedule is declared in code: remove its declaration instead.", {"declared": True}
            )
        schedule.delete()


def run_schedule_now(schedule_id: str | uuid.UUID, *, actor: str | None = None) -> Job:
    """Enqueues one job at once, outside the ticks (with its own idempotency key), also when the
    schedule is disabled."""
    with transaction.atomic():
        schedule = _locked(schedule_id)
        job = enqueue_jobs([_job_spec(schedule, f"schedule:{schedule.name}:now:{uuid.uuid4().hex}")])[0].job
        PeriodicSchedule.objects.filter(id=schedule.id).update(
            last_fired_at=job.created_at, last_job_id=job.id, last_error=None, updated_at=Now()
        )
    logger.info("schedule run now", extra={"schedule": schedule.name, "job_id": str(job.id), "actor": actor})
    return job


# ---- code declarations ---------------------------------------------------------------------


def sync_declared_schedules(declarations: Iterable[Declaration] | None = None) -> int:
    """Makes the table match the code's declarations; returns the rows created, changed or deleted.

    Fields the code owns are re-applied; `enabled` stays as an operator set it. Declared rows the
    code no longer has are deleted. A schedule made in the API or the admin is never touched,
    even when a declaration has its name (that declaration is then ignored, with a warning).
    """
    wanted = {d.name: d for d in (declared_schedules() if declarations is None else declarations)}
    changes = 0
    with transaction.atomic():
        rows = {s.name: s for s in PeriodicSchedule.objects.select_for_update().filter(name__in=wanted)}
        gone = PeriodicSchedule.objects.filter(declared=True).exclude(name__in=wanted)
        changes += gone.delete()[0]
        for name, declaration in wanted.items():
            row = rows.get(name)
            try:
                declared = declaration.as_schedule(declaration.job_type())
                with transaction.atomic():
                    if row is None:
                        create_schedule(declared)
                        changes += 1
                    elif not row.declared:
                        logger.warning(
                            "a schedule made by an operator has this name", extra={"schedule": name}
                        )
                    elif any(getattr(row, f) != getattr(declared, f) for f in PeriodicSchedule.CODE_OWNED):
                        _apply(row, {f: getattr(declared, f) for f in PeriodicSchedule.CODE_OWNED})
                        changes += 1
            except (TaskForgeError, ValueError) as exc:
                logger.error("periodic declaration ignored", extra={"schedule": name, "error": str(exc)})
    return changes


@cache
def sync_declarations_once() -> int:
    """The scheduler's start-up duty: syncs once per process (a failure is retried next tick), so
    during a rolling deploy the most recently started scheduler's code wins, once."""
    return sync_declared_schedules()
