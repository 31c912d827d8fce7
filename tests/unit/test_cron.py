"""Cron expressions and the firing plan of a due schedule, with controlled clock values (no I/O)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from scheduler.cron import Cron, CronError
from scheduler.models import PeriodicSchedule
from scheduler.schedules import plan_fires

T0 = datetime(2030, 1, 7, 10, 0, tzinfo=UTC)  # a Monday
S = timedelta(seconds=1)
M = timedelta(minutes=1)


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("* * * * * *", T0 + 0.3 * S, T0 + S),  # seconds first
        ("*/2 * * * * *", T0, T0 + 2 * S),
        ("*/5 * * * *", T0, T0 + 5 * M),  # five fields: on the minute
        ("0 9 * * 1-5", T0, datetime(2030, 1, 8, 9, tzinfo=UTC)),
        ("@hourly", T0, T0 + 60 * M),
        ("0 0 29 2 *", T0, datetime(2032, 2, 29, tzinfo=UTC)),
    ],
)
def test_next_tick_is_strictly_after(expression, after, expected) -> None:
    assert Cron.parse(expression).next_after(after) == expected


def test_a_tick_itself_is_not_after_itself_and_previous_is_strictly_before() -> None:
    cron = Cron.parse("* * * * * *")
    assert cron.next_after(T0) == T0 + S
    assert cron.previous_before(T0) == T0 - S
    assert cron.previous_before(T0 + 0.5 * S) == T0


def test_timezones_follow_daylight_saving_time() -> None:
    cron = Cron.parse("0 9 * * *", "Europe/Berlin")
    assert cron.next_after(datetime(2030, 1, 7, tzinfo=UTC)) == datetime(2030, 1, 7, 8, tzinfo=UTC)  # CET
    assert cron.next_after(datetime(2030, 7, 1, tzinfo=UTC)) == datetime(2030, 7, 1, 7, tzinfo=UTC)  # CEST


def test_ticks_across_a_daylight_saving_change_keep_moving_forward() -> None:
    cron = Cron.parse("*/20 * * * *", "Europe/Berlin")
    for start in (datetime(2030, 3, 31, 0, 30, tzinfo=UTC), datetime(2030, 10, 27, 0, 30, tzinfo=UTC)):
        ticks, tick = [], start
        for _ in range(9):
            tick = cron.next_after(tick)
            ticks.append(tick)
        assert all(b - a == 20 * M for a, b in itertools.pairwise(ticks)), ticks


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("", "Give 5 fields"),
        ("* * * *", "Give 5 fields"),
        ("0 0 0 1 1 * 2030", "Give 5 fields"),  # croniter's year field is not offered
        ("60 * * * *", "Invalid cron expression"),
        ("*/0 * * * *", "Invalid cron expression"),
        ("a b c d e", "Invalid cron expression"),
        ("H * * * *", "Invalid cron expression"),
        ("@reboot", "Invalid cron expression"),
        ("0 0 30 2 *", "no tick within 50 years"),
        ("* " * 150, "Give 5 fields"),
    ],
)
def test_bad_expressions_are_refused_with_a_reason(expression, problem) -> None:
    with pytest.raises(CronError, match=problem):
        Cron.parse(expression)


@pytest.mark.parametrize("zone", ["Mars/Olympus", "", "../../etc/passwd", "utc ", "Europe/Berlin\x00"])
def test_unknown_timezones_are_refused(zone) -> None:
    with pytest.raises(CronError, match="IANA"):
        Cron.parse("* * * * *", zone)


def _schedule(cron: str, due: datetime, policy: str = "run_once", limit: int = 10) -> PeriodicSchedule:
    return PeriodicSchedule(cron=cron, misfire_policy=policy, catch_up_limit=limit, next_fire_at=due)


def test_an_on_time_tick_fires_once_and_the_next_one_is_planned() -> None:
    plan = plan_fires(_schedule("* * * * * *", T0), now=T0 + 0.2 * S, grace_seconds=10)
    assert plan.fire_times == [T0] and plan.next_fire_at == T0 + S and not plan.misfired


def test_a_late_scheduler_tick_within_the_grace_fires_every_due_tick() -> None:
    plan = plan_fires(_schedule("* * * * * *", T0, "skip"), now=T0 + 3.5 * S, grace_seconds=10)
    assert plan.fire_times == [T0, T0 + S, T0 + 2 * S, T0 + 3 * S]
    assert plan.next_fire_at == T0 + 4 * S and not plan.misfired


@pytest.mark.parametrize(
    ("policy", "limit", "expected"),
    [
        ("skip", 10, []),
        ("run_once", 10, [T0 + 60 * M]),  # the latest due tick
        ("catch_up", 3, [T0, T0 + M, T0 + 2 * M]),  # the oldest ones, then the rest are skipped
        ("catch_up", 1000, [T0 + k * M for k in range(61)]),  # fewer missed ticks than the limit
    ],
)
def test_missed_ticks_follow_the_misfire_policy(policy, limit, expected) -> None:
    now = T0 + 60 * M + 30 * S  # no scheduler ran for an hour
    plan = plan_fires(_schedule("* * * * *", T0, policy, limit), now=now, grace_seconds=10)
    assert plan.fire_times == expected
    assert plan.next_fire_at == T0 + 61 * M and plan.misfired


def test_a_long_outage_of_an_every_second_schedule_plans_only_what_fires() -> None:
    week = 7 * 24 * 3600 * S  # 604,800 missed ticks: none is enumerated beyond the limit
    plan = plan_fires(_schedule("* * * * * *", T0, "catch_up", 5), now=T0 + week, grace_seconds=10)
    assert plan.fire_times == [T0 + k * S for k in range(5)]
    assert plan.next_fire_at == T0 + week + S
