"""Operator actions against real worker and scheduler processes."""

from __future__ import annotations

import pytest

from jobs.models import Job, JobEvent
from jobs.services import JobSpec, enqueue_job, enqueue_jobs
from jobs.states import JobState
from tests.conftest import wait_for

pytestmark = pytest.mark.e2e
FAST_HEARTBEAT = {"TASKFORGE_LEASE_SECONDS": "3"}  # heartbeat every second


def _state(job_id) -> str:
    return Job.objects.values_list("state", flat=True).get(id=job_id)


@pytest.mark.parametrize("payload", [{"seconds": 30}, {"seconds": 3, "ignore_cancel": True}])
def test_a_running_job_is_cancelled_end_to_end(spawn, api, payload: dict) -> None:
    spawn("runworker", env=FAST_HEARTBEAT)
    job_type = "tests.stubborn" if payload.get("ignore_cancel") else "taskforge.sleep"
    job = enqueue_job(job_type, {"seconds": payload["seconds"]}).job
    wait_for(lambda: _state(job.id) == JobState.RUNNING, what="job to start")
    response = api.post(f"/jobs/{job.id}/cancel", {"reason": "no longer needed"}, format="json")
    assert response.status_code == 202 and response.json()["cancelRequested"] is True
    wait_for(lambda: _state(job.id) == JobState.CANCELED, timeout=30, what="job to end CANCELED")
    types = list(JobEvent.objects.filter(job_id=job.id).order_by("id").values_list("type", flat=True))
    assert types[:3] == ["created", "claimed", "cancel_requested"] and types[-1] == "canceled"
    assert "succeeded" not in types


def test_bulk_replay_of_500_dead_letters_then_all_succeed(spawn, api) -> None:
    spawn("runworker", "--concurrency", "8")
    spawn("runscheduler")
    ids = [r.job.id for r in enqueue_jobs([JobSpec("tests.flaky", max_attempts=1) for _ in range(500)])]
    dead = Job.objects.filter(id__in=ids, state=JobState.DLQ)
    wait_for(lambda: dead.count() == 500, timeout=60, what="all 500 to be dead-lettered")
    assert api.post("/dlq/replay", {"jobType": "tests.flaky"}, format="json").json() == {"replayed": 500}
    done = Job.objects.filter(id__in=ids, state=JobState.SUCCEEDED)
    wait_for(lambda: done.count() == 500, timeout=60, what="all 500 replayed jobs to succeed")
    assert api.get("/dlq").json()["total"] == 0
