"""The database trigger mirrors jobs/states.py: every pair of states, walked in Postgres."""

from __future__ import annotations

import itertools
import uuid

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from jobs.models import Job
from jobs.states import FINISHED_STATES, TRANSITIONS, JobState


def _columns_for(state: JobState) -> dict:
    """Column values that satisfy the CHECK constraints for a job in `state`."""
    now = timezone.now()
    running = state == JobState.RUNNING
    return {
        "state": state,
        "lease_owner": "w" if running else None,
        "lease_token": uuid.uuid4() if running else None,
        "lease_expires_at": now if running else None,
        "next_run_at": now if state in (JobState.PENDING, JobState.RETRYING) else None,
        "finished_at": now if state in FINISHED_STATES else None,
    }


@pytest.mark.django_db
@pytest.mark.parametrize(("old", "new"), list(itertools.product(JobState, JobState)))
def test_trigger_allows_exactly_the_table(old: JobState, new: JobState) -> None:
    job = Job.objects.create(queue="q", job_type="taskforge.noop", **_columns_for(old))
    update = Job.objects.filter(id=job.id)
    if old == new or new in TRANSITIONS[old]:
        assert update.update(**_columns_for(new)) == 1
    else:
        with pytest.raises(IntegrityError, match=f"invalid job state transition from {old} to {new}"):
            with transaction.atomic():
                update.update(**_columns_for(new))
        assert Job.objects.get(id=job.id).state == old


@pytest.mark.django_db
def test_constraints_refuse_out_of_range_rows() -> None:
    for bad in ({"priority": 101}, {"max_attempts": 0}, {"backoff": 0.5}, {"state": "BOGUS"}):
        with pytest.raises(IntegrityError), transaction.atomic():
            Job.objects.create(queue="q", job_type="t", **{**_columns_for(JobState.QUEUED), **bad})
    # a RUNNING job must hold a lease: fencing depends on it
    with pytest.raises(IntegrityError), transaction.atomic():
        Job.objects.create(queue="q", job_type="t", **{**_columns_for(JobState.RUNNING), "lease_token": None})
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM jobs")
        assert cursor.fetchone()[0] == 0
