"""Races on real connections: each thread has its own Postgres connection."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection

from jobs.models import Job
from jobs.services import JobSpec, claim_jobs, enqueue_job, enqueue_jobs

pytestmark = pytest.mark.django_db(transaction=True)


def _race(n: int, work: Callable[[int], Any]) -> list[Any]:
    """Runs `work(i)` in n threads released at the same instant; returns their results."""
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait()
            results[i] = work(i)
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    return results


def test_concurrent_claimers_never_claim_the_same_job() -> None:
    ids = [r.job.id for r in enqueue_jobs([JobSpec("taskforge.noop") for _ in range(300)])]
    # every claimer asks for every id, the worst case (the ready queue normally splits them)
    claimed = _race(4, lambda i: [c.id for c in claim_jobs(worker_id=f"w{i}", ids=ids, lease_seconds=30)])
    flat = [job_id for batch in claimed for job_id in batch]
    assert len(flat) == len(set(flat)) == 300
    assert Job.objects.filter(state="RUNNING", attempt_count=1).count() == 300


def test_concurrent_identical_enqueues_make_one_job() -> None:
    results = _race(8, lambda i: enqueue_job("taskforge.echo", {"order": 42}, idempotency_key="order-42"))
    assert len({r.job.id for r in results}) == 1
    assert sum(r.created for r in results) == 1
    assert Job.objects.count() == 1


def test_cancel_racing_a_claim_has_exactly_one_winner() -> None:
    from jobs.services import cancel_jobs

    ids = [r.job.id for r in enqueue_jobs([JobSpec("taskforge.noop") for _ in range(200)])]
    claimed, canceled = _race(
        2,
        lambda i: (
            {c.id for c in claim_jobs(worker_id="w", ids=ids, lease_seconds=30)}
            if i == 0
            else {job_id for job_id, state in cancel_jobs(ids=ids).items() if state == "CANCELED"}
        ),
    )
    assert not claimed & canceled  # exactly one winner per job...
    assert claimed | canceled == set(ids)  # ...and no job lost
    # a job claimed first still gets the cancel: it is asked to stop, and will end CANCELED
    assert Job.objects.filter(id__in=claimed, state="RUNNING", cancel_requested=True).count() == len(claimed)


def test_concurrent_replays_replay_each_job_once() -> None:
    from dlq.services import dead_letter_jobs, replay_dead_letters
    from jobs.models import JobEvent

    ids = [r.job.id for r in enqueue_jobs([JobSpec("taskforge.noop") for _ in range(100)])]
    assert len(dead_letter_jobs(ids=ids, reason="test")) == 100
    results = _race(4, lambda i: replay_dead_letters(ids=ids))
    flat = [job_id for batch in results for job_id in batch]
    assert sorted(flat) == sorted(ids)  # each replayed by exactly one caller
    assert JobEvent.objects.filter(type="replayed").count() == 100
    assert set(Job.objects.values_list("state", flat=True)) == {"QUEUED"}
