"""Crashes and restarts lose no job: kill -9, Redis flush, graceful shutdown."""

from __future__ import annotations

import signal

import pytest
from django.db import connection

from jobs.models import Job, JobEvent
from jobs.services import JobSpec, enqueue_job, enqueue_jobs
from jobs.states import JobState
from tests.conftest import wait_for
from tests.handlers import STARTED_KEY
from workers import keys

pytestmark = pytest.mark.e2e

SHORT_LEASE = {"TASKFORGE_LEASE_SECONDS": "2"}


def _job(job_id) -> Job:
    return Job.objects.get(id=job_id)


def test_kill_9_mid_job_reruns_on_another_worker(spawn) -> None:
    doomed = spawn("runworker", "--concurrency", "1", env=SHORT_LEASE)
    spawn("runscheduler")
    job = enqueue_job("taskforge.sleep", {"seconds": 3}).job  # outlives the kill by a wide margin
    running = wait_for(lambda: _job(job.id).state == JobState.RUNNING and _job(job.id), what="job to start")
    doomed.signal(signal.SIGKILL)
    doomed.wait(timeout=10)
    survivor = spawn("runworker", "--concurrency", "1", env=SHORT_LEASE)
    wait_for(lambda: _job(job.id).state == JobState.SUCCEEDED, timeout=30, what="job to be re-run")
    done = _job(job.id)
    assert done.attempt_count == 2
    assert done.lease_owner is None
    types = list(JobEvent.objects.filter(job_id=job.id).order_by("id").values_list("type", "worker_id"))
    assert [t for t, _ in types] == ["created", "claimed", "lease_expired", "queued", "claimed", "succeeded"]
    claimers = [w for t, w in types if t == "claimed"]
    assert claimers[0] == running.lease_owner and claimers[1] != claimers[0]
    assert str(survivor.pid) in claimers[1]


def test_flushdb_loses_no_queued_job(spawn, redis_db) -> None:
    ids = [r.job.id for r in enqueue_jobs([JobSpec("taskforge.noop") for _ in range(200)])]
    assert redis_db.zcard(keys.queue_key("jobs:ready")) == 200
    redis_db.flushdb()
    spawn("runscheduler")
    spawn("runworker", "--concurrency", "8")
    wait_for(
        lambda: Job.objects.filter(id__in=ids, state=JobState.SUCCEEDED).count() == 200,
        timeout=30,
        what="all 200 jobs to succeed",
    )


def test_sigterm_lets_the_running_job_finish_and_exits_0(spawn, redis_db) -> None:
    worker = spawn("runworker", "--concurrency", "2")
    job = enqueue_job("tests.started_sleep", {"seconds": 1.0}).job
    # RUNNING only means claimed: wait for the handler itself, or SIGTERM may release the job
    wait_for(lambda: redis_db.lrange(STARTED_KEY, 0, -1) == [str(job.id)], what="the handler to start")
    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=20) == 0
    done = _job(job.id)
    assert done.state == JobState.SUCCEEDED and done.attempt_count == 1
    assert "worker stopped" in worker.output()


def test_sigterm_past_the_grace_period_releases_the_job(spawn) -> None:
    worker = spawn("runworker", env={"TASKFORGE_SHUTDOWN_GRACE_SECONDS": "0.2"})
    job = enqueue_job("taskforge.sleep", {"seconds": 30}).job
    wait_for(lambda: _job(job.id).state == JobState.RUNNING, what="job to start")
    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=20) == 0
    released = _job(job.id)
    assert released.state == JobState.QUEUED and released.attempt_count == 0
    types = list(JobEvent.objects.filter(job_id=job.id).order_by("id").values_list("type", flat=True))
    assert types == ["created", "claimed", "released"]


def test_dropped_postgres_connections_lose_no_job(spawn) -> None:
    spawn("runworker", "--concurrency", "4")
    spawn("runscheduler")
    ids = [
        r.job.id for r in enqueue_jobs([JobSpec("taskforge.sleep", {"seconds": 0.01}) for _ in range(300)])
    ]
    done = Job.objects.filter(id__in=ids, state=JobState.SUCCEEDED)
    for threshold in (50, 150, 250):  # cut every other connection three times mid-run
        wait_for(lambda t=threshold: done.count() >= t, timeout=30, what=f"{threshold} jobs done")
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            assert cursor.fetchone()[0] >= 1
    wait_for(lambda: done.count() == 300, timeout=60, what="all 300 jobs to succeed")
    assert not Job.objects.exclude(state=JobState.SUCCEEDED).exists()
