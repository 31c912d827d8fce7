"""Worker edge cases against a real worker process: timeouts, misbehaving handlers, shutdown."""

from __future__ import annotations

import signal
from collections import Counter

import pytest

from dlq.models import DeadLetter
from jobs.models import Job, JobEvent
from jobs.services import JobSpec, enqueue_job, enqueue_jobs
from jobs.states import JobState
from tests.conftest import wait_for
from tests.handlers import STARTED_KEY
from workers import broker, keys

pytestmark = pytest.mark.e2e


def _job(job_id) -> Job:
    return Job.objects.get(id=job_id)


def test_a_job_past_its_timeout_fails_and_the_worker_moves_on(spawn) -> None:
    spawn("runworker", "--concurrency", "2")
    spawn("runscheduler")
    hung = enqueue_job(
        "taskforge.sleep", {"seconds": 600}, timeout_ms=300, max_attempts=2, initial_delay_ms=10
    ).job
    wait_for(
        lambda: _job(hung.id).state == JobState.DLQ, timeout=30, what="the hung job to exhaust its attempts"
    )
    done = _job(hung.id)
    assert done.attempt_count == 2 and "JobTimeout" in done.last_error
    # the sleeping handler stops cooperatively; its slot serves the next job
    quick = enqueue_job("taskforge.echo", {"ok": True}).job
    wait_for(lambda: _job(quick.id).state == JobState.SUCCEEDED, what="the next job")


@pytest.mark.parametrize("how", ["exit", "unstorable"])
def test_misbehaving_handlers_fail_their_job_not_the_worker(spawn, how: str) -> None:
    spawn("runworker", "--concurrency", "1")
    bad = enqueue_job("tests.misbehave", {"how": how}, max_attempts=1).job
    wait_for(lambda: _job(bad.id).state == JobState.DLQ, what="the job to be dead-lettered")
    assert DeadLetter.objects.get(job_id=bad.id).reason == "attempts exhausted"
    assert "\x00" not in _job(bad.id).last_error
    after = enqueue_job("taskforge.echo", {"still": "alive"}).job
    wait_for(lambda: _job(after.id).state == JobState.SUCCEEDED, what="the worker to keep working")


def test_sigterm_releases_prefetched_jobs_without_starting_them(spawn) -> None:
    worker = spawn("runworker", "--concurrency", "1", "--prefetch", "1")
    first = enqueue_job("taskforge.sleep", {"seconds": 1.0}, idempotency_key="first").job
    second = enqueue_job("taskforge.sleep", {"seconds": 1.0}, idempotency_key="second").job
    wait_for(
        lambda: Job.objects.filter(id__in=[first.id, second.id], state=JobState.RUNNING).count() == 2,
        what="both jobs claimed (one running, one prefetched)",
    )
    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=20) == 0
    states = {j.idempotency_key: j for j in Job.objects.filter(id__in=[first.id, second.id])}
    finished = [j for j in states.values() if j.state == JobState.SUCCEEDED]
    released = [j for j in states.values() if j.state == JobState.QUEUED]
    assert len(finished) == 1 and len(released) == 1
    assert released[0].attempt_count == 0
    types = list(JobEvent.objects.filter(job_id=released[0].id).order_by("id").values_list("type", flat=True))
    assert types == ["created", "claimed", "released"]


def test_process_pool_kills_a_stuck_handler_and_keeps_its_slot(spawn) -> None:
    spawn("runworker", "--pool", "processes", "--concurrency", "1")
    spawn("runscheduler")
    stuck = enqueue_job("tests.spin", timeout_ms=500, max_attempts=2, initial_delay_ms=10).job
    wait_for(
        lambda: _job(stuck.id).state == JobState.DLQ, timeout=60, what="the stuck job to be killed twice"
    )
    assert "JobTimeout" in _job(stuck.id).last_error
    # the only slot was freed by killing the child: the next job still runs
    after = enqueue_job("taskforge.echo", {"ran": "in a child"}).job
    wait_for(lambda: _job(after.id).state == JobState.SUCCEEDED, timeout=60, what="the next job")
    assert _job(after.id).result == {"ran": "in a child"}


def test_long_jobs_after_a_burst_of_short_ones_are_shared_not_hoarded(spawn) -> None:
    """A burst of noop jobs raises each worker's adaptive prefetch; once the queue runs dry it
    falls back to --concurrency, so the long jobs that follow go to both workers."""
    for _ in range(2):
        spawn("runworker", "--concurrency", "2")
    for _ in range(10):
        enqueue_jobs([JobSpec("taskforge.noop") for _ in range(1_000)])
    wait_for(
        lambda: Job.objects.filter(state=JobState.SUCCEEDED).count() == 10_000,
        timeout=120,
        what="the burst of short jobs to finish",
    )
    # Each worker acks its last claim with its next pop: with nothing left, that pop was empty.
    wait_for(lambda: broker.client().zcard(keys.INFLIGHT) == 0, what="both workers to find the queue dry")
    long = [r.job.id for r in enqueue_jobs([JobSpec("taskforge.sleep", {"seconds": 0.5}) for _ in range(8)])]
    wait_for(
        lambda: Job.objects.filter(id__in=long, state=JobState.SUCCEEDED).count() == 8,
        timeout=60,
        what="the long jobs to finish",
    )
    claims = JobEvent.objects.filter(job_id__in=long, type="claimed").values_list("worker_id", flat=True)
    per_worker = Counter(claims)
    assert len(per_worker) == 2 and min(per_worker.values()) >= 2, per_worker


def test_jobs_claimed_before_the_slots_got_stuck_go_to_an_idle_worker(spawn, redis_db) -> None:
    """A burst's rate lets a worker claim far ahead of its slots; when the jobs that follow
    are long, what waits beyond the shrunk prefetch goes back for another worker to run."""
    spawn("runworker", "--concurrency", "2")
    for _ in range(4):
        enqueue_jobs([JobSpec("taskforge.noop") for _ in range(1_000)])
    specs = [JobSpec("tests.started_sleep", {"seconds": 1.0}) for _ in range(20)]
    long = [r.job.id for r in enqueue_jobs(specs)]
    held = Job.objects.filter(id__in=long, state=JobState.RUNNING)
    wait_for(lambda: held.count() >= 6, timeout=60, what="the first worker to claim long jobs ahead")
    owner = held.values_list("lease_owner", flat=True).first()
    spawn("runworker", "--concurrency", "2")
    wait_for(
        lambda: Job.objects.filter(id__in=long, state=JobState.SUCCEEDED).count() == 20,
        timeout=60,
        what="the long jobs to finish",
    )
    claimers = set(
        JobEvent.objects.filter(job_id__in=long, type="claimed").values_list("worker_id", flat=True)
    )
    assert owner in claimers and len(claimers) == 2  # the second worker ran some of them
    assert JobEvent.objects.filter(job_id__in=long, type="released").exists()
    # given back unstarted: each long job's handler started exactly once, its attempt counted once
    assert sorted(redis_db.lrange(STARTED_KEY, 0, -1)) == sorted(str(job_id) for job_id in long)
    assert set(Job.objects.filter(id__in=long).values_list("attempt_count", flat=True)) == {1}
