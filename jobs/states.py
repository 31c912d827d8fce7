"""The job state machine: the one list of states and the one table of legal moves.

The database mirrors ``TRANSITIONS`` with a trigger (jobs/migrations/0002), so even a buggy
write cannot make an illegal move; ``tests/unit/test_states.py`` walks the table and
``tests/integration/test_transitions_db.py`` walks the trigger against it.
"""

from __future__ import annotations

from django.db import models


class JobState(models.TextChoices):
    # accepted, waiting for its run time; the scheduler moves it to QUEUED when due
    PENDING = "PENDING"
    # runnable, its id is in the Redis ready queue; a worker claims it (RUNNING)
    QUEUED = "QUEUED"
    # a worker holds the lease; the worker settles it, the scheduler requeues it when the lease expires
    RUNNING = "RUNNING"
    # the last attempt failed; the scheduler moves it to QUEUED at next_run_at
    RETRYING = "RETRYING"
    # terminal
    SUCCEEDED = "SUCCEEDED"
    # dead-lettered; an operator's replay or retry moves it to QUEUED
    DLQ = "DLQ"
    # terminal by request; an operator's retry moves it to QUEUED
    CANCELED = "CANCELED"


S = JobState

TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    S.PENDING: frozenset({S.QUEUED, S.CANCELED, S.DLQ}),
    S.QUEUED: frozenset({S.RUNNING, S.CANCELED, S.DLQ, S.PENDING}),
    S.RUNNING: frozenset({S.SUCCEEDED, S.RETRYING, S.DLQ, S.CANCELED, S.QUEUED}),
    S.RETRYING: frozenset({S.QUEUED, S.CANCELED, S.DLQ}),
    S.SUCCEEDED: frozenset(),
    S.DLQ: frozenset({S.QUEUED}),
    S.CANCELED: frozenset({S.QUEUED}),
}

# States a job never leaves by itself (DLQ and CANCELED leave only by an operator's action).
FINISHED_STATES = frozenset({S.SUCCEEDED, S.DLQ, S.CANCELED})
ACTIVE_STATES = frozenset(JobState) - FINISHED_STATES


class InvalidTransition(Exception):
    """A move the state table forbids."""

    def __init__(self, old: str, new: str) -> None:
        self.old, self.new = old, new
        super().__init__(f"invalid job state transition from {old} to {new}")


def can_transition(old: str, new: str) -> bool:
    """True when the table allows old -> new."""
    return JobState(new) in TRANSITIONS[JobState(old)]


def ensure_transition(old: str, new: str) -> None:
    """Raises InvalidTransition unless the table allows old -> new."""
    if not can_transition(old, new):
        raise InvalidTransition(old, new)
