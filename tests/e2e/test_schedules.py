"""Periodic schedules with real runscheduler and runworker processes."""

from __future__ import annotations

import json
import signal
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.db import connection

from jobs.models import Job
from jobs.states import JobState
from scheduler.models import PeriodicSchedule
from scheduler.schedules import MISFIRE_GRACE_SECONDS
from tests.conftest import wait_for
from tests.handlers import EXECUTIONS_KEY

pytestmark = pytest.mark.e2e

S = timedelta(seconds=1)


def db_now() -> datetime:
    with connection.cursor() as cursor:
        cursor.execute("SELECT now()")
        return cursor.fetchone()[0]


def fired_ticks(name: str) -> list[datetime]:
    """The tick of each job the schedule fired (from its idempotency key), oldest first."""
    prefix = f"schedule:{name}:"
    keys = Job.objects.filter(idempotency_key__startswith=prefix).values_list("idempotency_key", flat=True)
    return sorted(datetime.fromisoformat(key.removeprefix(prefix)) for key in keys)


def log_lines(proc: Any, msg: str) -> list[dict[str, Any]]:
    lines = (json.loads(line) for line in proc.output().splitlines() if line.startswith("{"))
    return [line for line in lines if line.get("msg") == msg]


def started(*schedulers: Any) -> bool:
    return all(log_lines(s, "scheduler started") for s in schedulers)


def test_two_schedulers_make_exactly_one_job_per_tick_of_an_every_second_schedule(
    spawn, api, redis_db
) -> None:
    schedulers = [spawn("runscheduler"), spawn("runscheduler")]
    spawn("runworker", "--concurrency", "4")
    wait_for(lambda: started(*schedulers), timeout=60, what="both schedulers to start")
    response = api.post(
        "/schedules",
        {"name": "every-second", "cron": "* * * * * *", "jobType": "tests.record"},
        format="json",
    )
    assert response.status_code == 201, response.content
    wait_for(
        lambda: (ticks := fired_ticks("every-second")) and ticks[-1] - ticks[0] >= 10 * S,
        timeout=120,
        interval=0.5,
        what="ten seconds of ticks",
    )
    assert api.patch(response["Location"], {"enabled": False}, format="json").status_code == 200
    for scheduler in schedulers:
        scheduler.signal(signal.SIGTERM)
        assert scheduler.wait(timeout=30) == 0

    ticks = fired_ticks("every-second")
    assert ticks == [ticks[0] + k * S for k in range(len(ticks))]  # every tick, none twice
    assert Job.objects.count() == len(ticks)
    fired = [sum(line["fired"] for line in log_lines(s, "tick")) for s in schedulers]
    assert sum(fired) == len(ticks), fired  # each job was made by one scheduler, once
    assert not any(log_lines(s, "schedule ticks already had their jobs") for s in schedulers)
    wait_for(
        lambda: Job.objects.filter(state=JobState.SUCCEEDED).count() == len(ticks),
        timeout=60,
        what="the worker to run every job",
    )
    assert redis_db.llen(EXECUTIONS_KEY) == len(ticks)


def test_ticks_missed_while_no_scheduler_ran_follow_each_misfire_policy(spawn, api) -> None:
    first = spawn("runscheduler")
    declared = PeriodicSchedule.objects.filter(name="tests.new-year", declared=True)
    wait_for(declared.exists, timeout=60, what="the declared schedule to be synced at start")
    first.stop()

    # Five ticks, all within one minute, that come due while no scheduler runs.
    window = (db_now() + 5 * S).replace(microsecond=0)
    if window.second > 54:
        window += (60 - window.second) * S
    cron = f"{window.second}-{window.second + 4} {window.minute} {window.hour} {window.day} {window.month} *"
    ids = {}
    for policy in ("skip", "run_once", "catch_up"):
        body = {
            "name": policy,
            "cron": cron,
            "jobType": "tests.record",
            "misfirePolicy": policy,
            "catchUpLimit": 3,
        }
        response = api.post("/schedules", body, format="json")
        assert response.status_code == 201, response.content
        assert datetime.fromisoformat(response.json()["nextFireAt"]) == window
        ids[policy] = response.json()["id"]

    missed_by = window + 4 * S + timedelta(seconds=MISFIRE_GRACE_SECONDS + 1)
    wait_for(lambda: db_now() > missed_by, timeout=60, interval=0.5, what="the ticks to be missed")
    second = spawn("runscheduler")
    worker = spawn("runworker")
    next_year = window + timedelta(days=300)
    wait_for(
        lambda: not PeriodicSchedule.objects.filter(id__in=ids.values(), next_fire_at__lt=next_year).exists(),
        timeout=60,
        what="the restarted scheduler to move every schedule to next year",
    )
    assert fired_ticks("skip") == []
    assert fired_ticks("run_once") == [window + 4 * S]  # the latest missed tick
    assert fired_ticks("catch_up") == [window, window + S, window + 2 * S]  # the oldest three
    warned = {line["schedule"]: line for line in log_lines(second, "schedule missed ticks")}
    assert {name: line["policy"] for name, line in warned.items()} == {p: p for p in ids}

    run = api.post(f"/schedules/{declared.get().id}/run")
    assert run.status_code == 201, run.content
    wait_for(lambda: Job.objects.get(id=run.json()["id"]).state == JobState.SUCCEEDED, timeout=60)
    assert Job.objects.get(id=run.json()["id"]).result == {"declared": True}
    worker.stop()
