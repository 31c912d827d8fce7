"""The chaos ledger's checks can fail: each rule is shown a job history that breaks it.

Pure functions over made-up histories, so these run with the fast tests (no chaos marker).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.chaos.ledger import LedgerResult, judge_job, walk_events
from tests.chaos.stack import Ended

T0 = datetime(2026, 1, 1, tzinfo=UTC)
W1, W2 = "host:101:aaaaaa", "host:202:bbbbbb"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


# Every history below starts so: created QUEUED, claimed by W1 as attempt 1.
START = [("created", 0, None, at(0), "QUEUED"), ("claimed", 1, W1, at(1), None)]


def judged(
    events: list[tuple], runs: list[tuple], state: str, fates: dict[int, Ended] | None = None
) -> LedgerResult:
    result = LedgerResult()
    job = ("job", "chaos.noop", state, 0, 5, T0, None)
    judge_job(result, "job", job, walk_events(events), runs, None, fates or {})
    return result


def test_a_run_killed_with_its_worker_is_a_duplicate_with_that_cause() -> None:
    events = [
        *START,
        ("lease_expired", 1, W1, at(12), None),
        ("queued", 1, None, at(12), None),
        ("claimed", 2, W2, at(13), None),
        ("succeeded", 2, W2, at(14), None),
    ]
    result = judged(
        events, [(1, W1, at(1.1)), (2, W2, at(13.1))], "SUCCEEDED", {101: Ended("w", 101, "kill -9", 5.0)}
    )
    assert result.problems == []
    assert dict(result.duplicates) == {"lease expired: its worker ended (kill -9)": 1}


def test_illegal_moves_and_unresolved_failures_are_problems() -> None:
    events = [
        *START,
        ("claimed", 2, W2, at(2), None),
        ("failed", 2, W2, at(3), None),
        ("failed", 2, W2, at(4), None),
    ]
    walk = walk_events(events)
    assert walk.problems == [
        "illegal move RUNNING -> RUNNING (`claimed`)",
        "`failed` after `failed` with no move between",
        "ends with `failed` and no move after it",
    ]


def test_a_success_never_run_a_run_never_claimed_or_two_runs_of_one_claim_are_problems() -> None:
    events = [*START, ("succeeded", 1, W1, at(2), None)]
    assert judged(events, [], "SUCCEEDED").problems == ["job: SUCCEEDED by attempt 1, which never ran"]
    assert judged(events, [(1, W2, at(1.5))], "SUCCEEDED").problems[0] == (
        f"job: ran attempt 1 on {W2} without claiming it"
    )
    twice = judged(events, [(1, W1, at(1.1)), (1, W1, at(1.2))], "SUCCEEDED").problems
    assert twice == [f"job: attempt 1 on {W1} ran 2 times under one claim"]
    assert judged(events, [(1, W1, at(1.1))], "DLQ").problems == [
        "job: events end in SUCCEEDED, the job is DLQ"
    ]
