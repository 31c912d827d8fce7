"""Firing periodic schedules against the real Postgres and Redis, with controlled clock values:
due ticks, misfire policies, jitter, broken schedules, concurrent schedulers, code declarations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from jobs.models import Job
from jobs.states import JobState
from scheduler import runtime, schedules
from scheduler.declarations import Declaration
from scheduler.models import PeriodicSchedule
from tests import handlers
from tests.integration.test_concurrency import _race
from workers import keys

pytestmark = pytest.mark.django_db(transaction=True)

T0 = datetime(2030, 1, 7, 10, 0, tzinfo=UTC)
S = timedelta(seconds=1)
M = timedelta(minutes=1)


def schedule(
    name: str = "every-second", cron: str = "* * * * * *", due: datetime = T0, **fields: Any
) -> PeriodicSchedule:
    """A saved schedule whose next tick is `due` (as if created just before it)."""
    created = schedules.create_schedule(
        PeriodicSchedule(name=name, cron=cron, job_type="tests.record", **fields)
    )
    PeriodicSchedule.objects.filter(id=created.id).update(next_fire_at=due)
    return PeriodicSchedule.objects.get(id=created.id)


def fired_ticks(name: str) -> list[datetime]:
    """The tick of each job a schedule fired, from its idempotency key, oldest first."""
    prefix = f"schedule:{name}:"
    found = Job.objects.filter(idempotency_key__startswith=prefix).values_list("idempotency_key", flat=True)
    return sorted(datetime.fromisoformat(key.removeprefix(prefix)) for key in found)


def test_a_due_tick_fires_one_queued_job_and_the_schedule_moves_on(redis_db) -> None:
    s = schedule(payload={"n": 1}, queue="periodic", priority=4)
    assert schedules.fire_due_schedules(now=T0 + 0.2 * S) == 1
    job = Job.objects.get()
    assert job.idempotency_key == f"schedule:every-second:{T0.isoformat()}"
    assert (job.job_type, job.payload, job.queue, job.priority) == ("tests.record", {"n": 1}, "periodic", 4)
    assert job.state == JobState.QUEUED
    assert redis_db.zscore(keys.queue_key("periodic"), str(job.id)) is not None
    s.refresh_from_db()
    assert (s.next_fire_at, s.last_fired_at, s.last_job_id, s.last_error) == (T0 + S, T0, job.id, None)
    assert schedules.fire_due_schedules(now=T0 + 0.9 * S) == 0  # the next tick is not due yet
    assert schedules.fire_due_schedules(now=T0 + S) == 1
    assert fired_ticks("every-second") == [T0, T0 + S]


def test_a_late_scheduler_tick_fires_every_tick_since_within_the_grace() -> None:
    schedule(misfire_policy="skip")
    assert schedules.fire_due_schedules(now=T0 + 4.5 * S, grace_seconds=10) == 5
    assert fired_ticks("every-second") == [T0 + k * S for k in range(5)]
    assert PeriodicSchedule.objects.get().next_fire_at == T0 + 5 * S


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ("skip", []),
        ("run_once", [T0 + 60 * M]),
        ("catch_up", [T0, T0 + M, T0 + 2 * M]),
    ],
)
def test_after_an_hour_without_a_scheduler_the_misfire_policy_decides(policy, expected) -> None:
    s = schedule("minutely", "* * * * *", misfire_policy=policy, catch_up_limit=3)
    now = T0 + 60 * M + 20 * S
    assert schedules.fire_due_schedules(now=now, grace_seconds=10) == len(expected)
    assert fired_ticks("minutely") == expected
    s.refresh_from_db()
    assert s.next_fire_at == T0 + 61 * M
    assert s.last_fired_at == (expected[-1] if expected else None)
    assert schedules.fire_due_schedules(now=T0 + 61 * M) == 1  # back to one job per tick
    assert fired_ticks("minutely") == [*expected, T0 + 61 * M]


def test_disabled_and_not_yet_due_schedules_do_not_fire() -> None:
    schedule("later", due=T0 + M)
    off = schedule("off")
    schedules.update_schedule(off.id, {"enabled": False})
    assert schedules.fire_due_schedules(now=T0 + S) == 0
    assert not Job.objects.exists()


def test_jitter_delays_the_job_but_not_the_tick() -> None:
    schedule(jitter_ms=60_000)
    assert schedules.fire_due_schedules(now=T0) == 1
    job = Job.objects.get()
    assert job.idempotency_key == f"schedule:every-second:{T0.isoformat()}"
    assert job.state == JobState.PENDING  # promoted by the scheduler when its delay is over
    assert job.created_at <= job.next_run_at <= job.created_at + timedelta(milliseconds=60_000)


def test_without_a_queue_a_job_goes_to_its_handlers_queue() -> None:
    created = schedules.create_schedule(
        PeriodicSchedule(name="d", cron="* * * * * *", job_type="tests.defaults")
    )
    PeriodicSchedule.objects.filter(id=created.id).update(next_fire_at=T0)
    schedules.fire_due_schedules(now=T0)
    assert Job.objects.get().queue == "special"


def test_a_schedule_that_cannot_enqueue_skips_its_tick_without_stopping_the_others() -> None:
    broken = schedule("broken")
    PeriodicSchedule.objects.filter(id=broken.id).update(job_type="gone.away")
    schedule("fine")
    assert schedules.fire_due_schedules(now=T0) == 1
    assert fired_ticks("fine") == [T0] and fired_ticks("broken") == []
    broken.refresh_from_db()
    assert broken.last_error == "Unknown job type 'gone.away'." and broken.next_fire_at == T0 + S
    PeriodicSchedule.objects.filter(id=broken.id).update(job_type="tests.record")
    assert schedules.fire_due_schedules(now=T0 + S) == 2  # fixed: it fires again, error cleared
    broken.refresh_from_db()
    assert broken.last_error is None and fired_ticks("broken") == [T0 + S]


def test_a_schedule_with_a_cron_written_around_the_services_is_disabled_not_retried() -> None:
    broken = schedule("broken")
    PeriodicSchedule.objects.filter(id=broken.id).update(cron="61 * * * *")
    schedule("fine")
    assert schedules.fire_due_schedules(now=T0) == 1
    broken.refresh_from_db()
    assert (broken.enabled, broken.next_fire_at) == (False, None)
    assert broken.last_error.startswith("Invalid cron expression")


def test_concurrent_schedulers_fire_each_tick_exactly_once() -> None:
    names = [f"s{i}" for i in range(30)]
    for name in names:
        schedule(name)
    total = 0
    for second in range(5):  # five scheduler ticks, four schedulers racing in each
        counts = _race(4, lambda i, second=second: schedules.fire_due_schedules(now=T0 + (second + 0.5) * S))
        total += sum(counts)
    assert total == Job.objects.count() == 30 * 5  # no scheduler counted another's job, none repeated
    for name in names:
        assert fired_ticks(name) == [T0 + k * S for k in range(5)]


def test_a_tick_fired_twice_still_makes_one_job() -> None:
    """The guard under the lock: a scheduler firing from a stale read makes no second job."""
    stale = schedule()
    assert schedules.fire_due_schedules(now=T0) == 1
    plan = schedules.plan_fires(stale, now=T0, grace_seconds=10)
    with pytest.raises(schedules.StaleRead):
        schedules.fire_schedule(stale, plan)  # next_fire_at has moved on since `stale` was read
    assert fired_ticks("every-second") == [T0]


def test_the_scheduler_tick_fires_due_schedules() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT now()")
        now = cursor.fetchone()[0]
    schedule(cron="0 0 1 1 *", due=now - 0.5 * S)  # one due tick, however slow this tick is
    schedules.sync_declarations_once.cache_clear()  # as in a scheduler process that just started
    assert runtime.tick(retention_days=0).fired == 1
    assert PeriodicSchedule.objects.filter(name="tests.new-year", declared=True).exists()  # synced at start


def declaration(name: str = "code.report", **fields: Any) -> Declaration:
    values = {
        "func": handlers.record, "name": name, "cron": "0 3 * * *", "timezone": "UTC", "payload": {},
        "queue": None, "priority": 0, "misfire_policy": "run_once", "catch_up_limit": 10, "jitter_ms": 0,
    }  # fmt: skip
    return Declaration(**{**values, **fields})


def test_declarations_are_created_then_kept_in_step_with_the_code() -> None:
    assert schedules.sync_declared_schedules([declaration()]) == 1
    row = PeriodicSchedule.objects.get(name="code.report")
    assert row.declared and row.job_type == "tests.record" and row.next_fire_at.hour == 3
    assert schedules.sync_declared_schedules([declaration()]) == 0  # nothing changed

    schedules.update_schedule(row.id, {"enabled": False})  # an operator pauses it
    assert schedules.sync_declared_schedules([declaration(cron="0 4 * * *", payload={"v": 2})]) == 1
    row.refresh_from_db()
    assert (row.cron, row.payload, row.enabled, row.next_fire_at) == ("0 4 * * *", {"v": 2}, False, None)

    schedules.update_schedule(row.id, {"enabled": True})
    row.refresh_from_db()
    assert row.next_fire_at.hour == 4


def test_declarations_removed_from_the_code_are_deleted_and_operators_schedules_never() -> None:
    schedules.sync_declared_schedules([declaration("old"), declaration("kept")])
    operators = schedule("mine")
    clash = schedule("code.clash")
    assert (
        schedules.sync_declared_schedules([declaration("kept"), declaration("code.clash", cron="0 5 * * *")])
        == 1
    )
    assert set(PeriodicSchedule.objects.values_list("name", flat=True)) == {"kept", "mine", "code.clash"}
    assert PeriodicSchedule.objects.get(id=operators.id).cron == "* * * * * *"
    clash_now = PeriodicSchedule.objects.get(id=clash.id)
    assert not clash_now.declared and clash_now.cron == "* * * * * *"  # left as the operator made it


def test_a_bad_declaration_is_skipped_and_the_others_sync() -> None:
    def not_a_handler(ctx: Any, payload: Any) -> None: ...

    synced = schedules.sync_declared_schedules(
        [
            declaration("good"),
            declaration("orphan", func=not_a_handler),
            declaration("big", payload={"x": "\x00"}),
        ]
    )
    assert synced == 1
    assert list(PeriodicSchedule.objects.values_list("name", flat=True)) == ["good"]
