"""The job lifecycle end to end with real worker and scheduler processes."""

from __future__ import annotations

import pytest

from dlq.models import DeadLetter
from jobs.models import Job, JobEvent
from jobs.services import JobSpec, enqueue_job, enqueue_jobs
from jobs.states import JobState
from tests.conftest import wait_for

pytestmark = pytest.mark.e2e


def _state(job_id) -> str:
    return Job.objects.values_list("state", flat=True).get(id=job_id)


def _event_types(job_id) -> list[str]:
    return list(JobEvent.objects.filter(job_id=job_id).order_by("id").values_list("type", flat=True))


def test_success_path(spawn) -> None:
    spawn("runworker", "--concurrency", "2")
    job = enqueue_job("taskforge.echo", {"hello": "world"}).job
    wait_for(lambda: _state(job.id) == JobState.SUCCEEDED, what="job to succeed")
    job.refresh_from_db()
    assert job.result == {"hello": "world"}
    assert job.attempt_count == 1
    assert job.finished_at is not None and job.lease_token is None
    assert _event_types(job.id) == ["created", "claimed", "succeeded"]


def test_fails_twice_then_succeeds_with_backoff(spawn) -> None:
    spawn("runworker", "--concurrency", "2")
    spawn("runscheduler")
    job = enqueue_job("taskforge.fail", {"times": 2}, initial_delay_ms=100, backoff=2.0).job
    wait_for(lambda: _state(job.id) == JobState.SUCCEEDED, what="job to succeed on attempt 3")
    job.refresh_from_db()
    assert job.attempt_count == 3 and job.result == {"succeededOnAttempt": 3}
    assert _event_types(job.id) == [
        "created",
        *["claimed", "failed", "retry_scheduled", "queued"] * 2,
        "claimed",
        "succeeded",
    ]
    events = {(e.type, e.attempt): e for e in JobEvent.objects.filter(job_id=job.id)}
    # backoff 100 ms then 200 ms: the retry never runs before its next_run_at
    for attempt, delay_ms in ((1, 100), (2, 200)):
        failed_at = events[("failed", attempt)].at
        assert (events[("queued", attempt)].at - failed_at).total_seconds() * 1000 >= delay_ms


def test_exhaustion_reaches_the_dlq(spawn) -> None:
    spawn("runworker")
    spawn("runscheduler")
    job = enqueue_job("taskforge.fail", {"message": "always"}, max_attempts=3, initial_delay_ms=10).job
    wait_for(lambda: _state(job.id) == JobState.DLQ, what="job to be dead-lettered")
    letter = DeadLetter.objects.get(job_id=job.id)
    assert letter.reason == "attempts exhausted" and letter.attempts == 3
    assert letter.last_error == "RuntimeError: always"
    assert _event_types(job.id)[-2:] == ["failed", "dead_lettered"]


def test_permanent_error_dead_letters_at_once(spawn) -> None:
    spawn("runworker")
    job = enqueue_job("taskforge.fail", {"permanent": True}, max_attempts=5).job
    wait_for(lambda: _state(job.id) == JobState.DLQ, what="job to be dead-lettered")
    assert Job.objects.get(id=job.id).attempt_count == 1
    assert DeadLetter.objects.get(job_id=job.id).reason == "permanent error"


def test_delayed_job_runs_when_due_not_before(spawn) -> None:
    spawn("runworker")
    spawn("runscheduler")
    job = enqueue_job("taskforge.noop", delay_ms=1500).job
    wait_for(lambda: _state(job.id) == JobState.SUCCEEDED, what="delayed job to run")
    job.refresh_from_db()
    assert (job.started_at - job.created_at).total_seconds() >= 1.5


def test_worker_without_queues_picks_up_a_new_queue(spawn) -> None:
    spawn("runworker")
    first = enqueue_job("taskforge.noop", queue="alpha").job
    wait_for(lambda: _state(first.id) == JobState.SUCCEEDED, what="first queue")
    late = enqueue_job("taskforge.noop", queue="brand.new:queue").job
    wait_for(lambda: _state(late.id) == JobState.SUCCEEDED, timeout=10, what="a queue created after start")


def test_worker_serves_only_its_queues_in_order(spawn) -> None:
    low = [r.job.id for r in enqueue_jobs([JobSpec("taskforge.noop", queue="low") for _ in range(5)])]
    high = [r.job.id for r in enqueue_jobs([JobSpec("taskforge.noop", queue="high") for _ in range(5)])]
    other = enqueue_job("taskforge.noop", queue="other").job
    worker = spawn("runworker", "--queues", "high,low", "--concurrency", "1", "--prefetch", "0", "--burst")
    assert worker.wait(timeout=60) == 0
    started = dict(Job.objects.filter(id__in=low + high).values_list("id", "started_at"))
    assert max(started[i] for i in high) < min(started[i] for i in low)
    assert _state(other.id) == JobState.QUEUED  # not one of its queues
