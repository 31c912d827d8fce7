"""The state table of DESIGN.md §3, walked pair by pair."""

from __future__ import annotations

import itertools

import pytest

from jobs.states import (
    TRANSITIONS,
    InvalidTransition,
    JobState,
    ensure_transition,
)

S = JobState
EXPECTED = {
    (S.PENDING, S.QUEUED), (S.PENDING, S.CANCELED), (S.PENDING, S.DLQ),
    (S.QUEUED, S.RUNNING), (S.QUEUED, S.CANCELED), (S.QUEUED, S.DLQ), (S.QUEUED, S.PENDING),
    (S.RUNNING, S.SUCCEEDED), (S.RUNNING, S.RETRYING), (S.RUNNING, S.DLQ), (S.RUNNING, S.CANCELED),
    (S.RUNNING, S.QUEUED),
    (S.RETRYING, S.QUEUED), (S.RETRYING, S.CANCELED), (S.RETRYING, S.DLQ),
    (S.DLQ, S.QUEUED), (S.CANCELED, S.QUEUED),
}  # fmt: skip


def test_every_state_has_a_row() -> None:
    assert set(TRANSITIONS) == set(JobState)


@pytest.mark.parametrize(("old", "new"), list(itertools.product(JobState, JobState)))
def test_transition_table_matches_the_contract(old: JobState, new: JobState) -> None:
    if (old, new) in EXPECTED:
        ensure_transition(old, new)
    else:
        with pytest.raises(InvalidTransition, match=f"from {old} to {new}"):
            ensure_transition(old, new)


def test_succeeded_is_the_only_dead_end() -> None:
    assert [s for s, exits in TRANSITIONS.items() if not exits] == [S.SUCCEEDED]
