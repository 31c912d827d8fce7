"""Cluster-wide limits with several real worker processes."""

from __future__ import annotations

import signal
from collections import Counter

import pytest

from jobs.models import Job
from jobs.services import JobSpec, enqueue_job, enqueue_jobs, update_queue_settings
from jobs.states import JobState
from tests.conftest import wait_for

pytestmark = pytest.mark.e2e


def test_a_global_rate_limit_holds_across_three_workers(spawn) -> None:
    ids = [r.job.id for r in enqueue_jobs([JobSpec("taskforge.noop") for _ in range(200)])]
    for _ in range(3):
        spawn("runworker", "--concurrency", "4", env={"RATE_LIMIT_PER_SEC": "20"})
    done = Job.objects.filter(id__in=ids, state=JobState.SUCCEEDED)
    wait_for(lambda: done.count() == 200, timeout=40, what="200 rate-limited jobs")
    starts = sorted(done.values_list("started_at", flat=True))
    elapsed = (starts[-1] - starts[0]).total_seconds()
    # burst 20, then 20/s: the 180 after the burst need 9 s
    assert 8.5 <= elapsed <= 11, elapsed
    per_window = Counter(int((t - starts[0]).total_seconds()) for t in starts)
    assert max(n for second, n in per_window.items() if second > 0) <= 22, per_window


def test_a_global_concurrency_limit_holds_across_three_workers(spawn) -> None:
    update_queue_settings("narrow", concurrency_limit=2)
    spec = JobSpec("taskforge.sleep", {"seconds": 0.2}, queue="narrow")
    ids = [r.job.id for r in enqueue_jobs([spec] * 20)]
    for _ in range(3):
        spawn("runworker", "--concurrency", "4")
    running = Job.objects.filter(queue="narrow", state=JobState.RUNNING)
    samples = []

    def finished() -> bool:
        samples.append(running.count())
        return Job.objects.filter(id__in=ids, state=JobState.SUCCEEDED).count() == 20

    wait_for(finished, timeout=60, interval=0.02, what="20 jobs through a concurrency limit of 2")
    assert max(samples) <= 2 and max(samples) == 2, Counter(samples)


def test_a_killed_worker_gives_its_concurrency_slots_back(spawn) -> None:
    update_queue_settings("narrow", concurrency_limit=1)
    lease = {"TASKFORGE_LEASE_SECONDS": "2"}
    doomed = spawn("runworker", env=lease)
    spawn("runscheduler")
    first = enqueue_job("taskforge.sleep", {"seconds": 30}, queue="narrow", max_attempts=1).job
    wait_for(
        lambda: Job.objects.get(id=first.id).state == JobState.RUNNING, what="first job to hold the slot"
    )
    second = enqueue_job("taskforge.echo", {"n": 2}, queue="narrow").job
    doomed.signal(signal.SIGKILL)
    doomed.wait(timeout=10)
    spawn("runworker", env=lease)
    wait_for(
        lambda: Job.objects.get(id=second.id).state == JobState.SUCCEEDED,
        timeout=30,
        what="the slot to return",
    )
    # Its one attempt died with the worker. The slot (a Redis entry) and the lease (the
    # scheduler's sweep of Postgres) run out independently, so this can come a tick later.
    wait_for(
        lambda: Job.objects.get(id=first.id).state == JobState.DLQ,
        timeout=10,
        what="the dead worker's job to reach the DLQ",
    )
