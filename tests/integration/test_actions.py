"""Operator actions over HTTP from every state: the right move and event, or 409 and no change."""

from __future__ import annotations

import uuid

import pytest
from django.utils import timezone

from dlq.models import DeadLetter
from jobs.models import Job, JobEvent
from jobs.services import enqueue_job
from jobs.states import JobState
from tests.conftest import claim_all
from workers import broker, keys, metrics

pytestmark = pytest.mark.django_db(transaction=True)
S = JobState


def job_in(state: JobState) -> Job:
    """A job brought into `state` the way the system would (through services and SQL)."""
    job = enqueue_job("taskforge.noop", delay_ms=60_000 if state == S.PENDING else None).job
    if state in (S.RUNNING, S.RETRYING, S.SUCCEEDED, S.DLQ):
        claim_all()
    now = timezone.now()
    moves = {
        S.RETRYING: {"state": S.RETRYING, "next_run_at": now, "attempt_count": 1},
        S.SUCCEEDED: {"state": S.SUCCEEDED, "finished_at": now},
        S.DLQ: {"state": S.DLQ, "finished_at": now, "last_error": "boom"},
        S.CANCELED: {"state": S.CANCELED, "finished_at": now},
    }
    if state in moves:
        lease = {"lease_owner": None, "lease_token": None, "lease_expires_at": None}
        Job.objects.filter(id=job.id).update(**moves[state], **lease)
    if state == S.DLQ:
        DeadLetter.objects.create(
            job_id=job.id, queue=job.queue, job_type=job.job_type, reason="test", attempts=1
        )
    job.refresh_from_db()
    assert job.state == state
    return job


def _events(job: Job) -> list[str]:
    return list(JobEvent.objects.filter(job_id=job.id).order_by("id").values_list("type", flat=True))


# action -> (states it applies to, resulting state, event, HTTP status)
ACTIONS = {
    "retry": ({S.RETRYING, S.DLQ, S.CANCELED}, S.QUEUED, "retried"),
    "cancel": ({S.PENDING, S.QUEUED, S.RETRYING}, S.CANCELED, "canceled"),
    "dlq": ({S.PENDING, S.QUEUED, S.RETRYING, S.RUNNING}, S.DLQ, "dead_lettered"),
}


@pytest.mark.parametrize("state", list(JobState))
@pytest.mark.parametrize("name", list(ACTIONS))
def test_action_from_every_state(api, name: str, state: JobState) -> None:
    allowed, target, event = ACTIONS[name]
    job = job_in(state)
    before = _events(job)
    response = api.post(f"/jobs/{job.id}/{name}", {"reason": "testing"}, format="json")
    after = Job.objects.get(id=job.id)
    if name == "cancel" and state == S.RUNNING:
        assert response.status_code == 202
        assert after.state == S.RUNNING and after.cancel_requested
        assert _events(job) == [*before, "cancel_requested"]
    elif state in allowed:
        assert response.status_code == 200, response.json()
        assert response.json()["state"] == target == after.state
        assert _events(job) == [*before, event]
        details = JobEvent.objects.filter(job_id=job.id).latest("id").details
        assert details["reason"] == "testing" and details["from"] == state
    else:
        assert response.status_code == 409
        body = response.json()
        assert body["code"] == "invalid_state_transition" and state in body["message"]
        assert body["details"]["state"] == state
        assert after.state == state and after.updated_at == job.updated_at
        assert _events(job) == before


def test_retry_from_dlq_resets_attempts_and_removes_the_dead_letter(api, redis_db) -> None:
    job = job_in(S.DLQ)
    assert api.post(f"/jobs/{job.id}/retry").status_code == 200
    job.refresh_from_db()
    assert (job.attempt_count, job.last_error, job.finished_at) == (0, None, None)
    assert not DeadLetter.objects.filter(job_id=job.id).exists()
    assert redis_db.zscore(keys.queue_key(job.queue), str(job.id)) is not None


def test_retry_from_retrying_keeps_attempts_and_runs_now(api) -> None:
    job = job_in(S.RETRYING)
    assert api.post(f"/jobs/{job.id}/retry").status_code == 200
    job.refresh_from_db()
    assert job.state == S.QUEUED and job.attempt_count == 1


def test_dead_lettering_a_running_job_fences_its_worker(api) -> None:
    job = job_in(S.RUNNING)
    token = job.lease_token
    assert api.post(f"/jobs/{job.id}/dlq", {"reason": "stuck"}, format="json").status_code == 200
    letter = DeadLetter.objects.get(job_id=job.id)
    assert letter.reason == "stuck" and letter.attempts == 1
    from jobs.services import renew_leases

    assert renew_leases(held={job.id: token}, lease_seconds=30) == {}  # the worker lost it


def test_cancel_twice_while_running_is_idempotent(api) -> None:
    job = job_in(S.RUNNING)
    assert api.post(f"/jobs/{job.id}/cancel").status_code == 202
    assert api.post(f"/jobs/{job.id}/cancel").status_code == 202
    assert _events(job).count("cancel_requested") == 1


def test_a_canceled_queued_job_leaves_the_ready_queue(api, redis_db) -> None:
    job = job_in(S.QUEUED)
    assert api.post(f"/jobs/{job.id}/cancel").status_code == 200
    assert redis_db.zscore(keys.queue_key(job.queue), str(job.id)) is None


@pytest.mark.parametrize("name", [*ACTIONS, "replay"])
def test_actions_on_unknown_or_malformed_ids_are_404(api, name: str) -> None:
    prefix = "/dlq" if name == "replay" else "/jobs"
    for job_id in (uuid.uuid4(), "not-a-uuid"):
        response = api.post(f"{prefix}/{job_id}/{name}")
        assert response.status_code == 404 and response.json()["code"] == "not_found"


def test_action_bodies_are_strict(api) -> None:
    job = job_in(S.QUEUED)
    for body, field in (({"why": "x"}, "why"), ({"reason": 5}, "reason"), ({"reason": "x" * 501}, "reason")):
        response = api.post(f"/jobs/{job.id}/cancel", body, format="json")
        assert response.status_code == 400 and set(response.json()["details"]) == {field}
    assert Job.objects.get(id=job.id).state == S.QUEUED


def test_dlq_list_detail_and_replay(api, redis_db) -> None:
    first, second = job_in(S.DLQ), job_in(S.DLQ)
    Job.objects.filter(id=second.id).update(queue="other")
    DeadLetter.objects.filter(job_id=second.id).update(queue="other")
    body = api.get("/dlq", {"queue": "other"}).json()
    assert body["total"] == 1 and body["items"][0]["jobId"] == str(second.id)
    assert set(body["items"][0]) >= {
        "jobId",
        "queue",
        "jobType",
        "payload",
        "reason",
        "lastError",
        "attempts",
    }
    detail = api.get(f"/dlq/{first.id}").json()
    assert detail["job"]["id"] == str(first.id) and detail["job"]["state"] == S.DLQ
    response = api.post(f"/dlq/{first.id}/replay")
    assert response.status_code == 200 and response.json()["state"] == S.QUEUED
    assert _events(first)[-1] == "replayed"
    assert api.get(f"/dlq/{first.id}").status_code == 404
    again = api.post(f"/dlq/{first.id}/replay")
    assert again.status_code == 409 and again.json()["details"]["state"] == S.QUEUED


def test_bulk_replay_by_ids_and_by_filter_is_safe_to_repeat(api) -> None:
    jobs = [job_in(S.DLQ) for _ in range(3)]
    ids = [str(j.id) for j in jobs[:2]]
    assert api.post("/dlq/replay", {"ids": ids}, format="json").json() == {"replayed": 2}
    assert api.post("/dlq/replay", {"ids": ids}, format="json").json() == {"replayed": 0}
    assert api.post("/dlq/replay", {"jobType": "taskforge.noop"}, format="json").json() == {"replayed": 1}
    assert api.post("/dlq/replay", {"jobType": "taskforge.noop"}, format="json").json() == {"replayed": 0}
    assert DeadLetter.objects.count() == 0
    assert api.post("/dlq/replay", {}, format="json").status_code == 400
    assert api.post("/dlq/replay", {"ids": ["nope"]}, format="json").status_code == 400


def test_pause_stops_claims_and_resume_restarts_them(api) -> None:
    job = job_in(S.QUEUED)
    response = api.post(f"/queues/{job.queue}/pause")
    assert response.status_code == 200
    assert response.json() == {
        "name": job.queue,
        "paused": True,
        "rateLimitPerSec": None,
        "concurrencyLimit": None,
    }
    assert {q["name"]: q["paused"] for q in api.get("/queues").json()["items"]}[job.queue] is True
    assert enqueue_job("taskforge.noop").job.state == S.QUEUED  # still accepts jobs
    assert broker.pop_ready([job.queue], 10, fair=False).ids == []
    assert api.post(f"/queues/{job.queue}/resume").json()["paused"] is False
    assert len(broker.pop_ready([job.queue], 10, fair=False).ids) == 2


def test_pause_survives_a_redis_flush(api, redis_db) -> None:
    from scheduler.services import sync_queue_settings

    job = job_in(S.QUEUED)
    api.post(f"/queues/{job.queue}/pause")
    redis_db.flushdb()
    broker.publish([broker.ReadyJob(job.id, job.queue, job.priority, job.queued_at)])
    sync_queue_settings()
    assert broker.pop_ready([job.queue], 10, fair=False).ids == []


def test_stats_counts_throughput_workers_and_oldest(api, redis_db) -> None:
    from scheduler.services import refresh_finished_counts

    job_in(S.DLQ)
    job_in(S.SUCCEEDED)
    queued = job_in(S.QUEUED)  # last: job_in claims whatever is ready
    Job.objects.filter(id=queued.id).update(queued_at=timezone.now() - timezone.timedelta(seconds=30))
    metrics.record_settled([("jobs:ready", "SUCCEEDED", 0.01)] * 3 + [("jobs:ready", "RETRYING", 0.01)])
    metrics.flush()
    broker.record_worker("w1", {"id": "w1", "host": "h", "pid": 1, "queues": "*", "slots": 4, "busy": 1}, 30)
    refresh_finished_counts()
    body = api.get("/stats").json()
    (queue,) = body["queues"]
    assert queue["counts"][S.QUEUED] == 1 and queue["counts"][S.DLQ] == 1 and queue["dlq"] == 1
    assert queue["counts"][S.SUCCEEDED] == 1
    assert 29 < queue["oldestQueuedAgeSeconds"] < 60
    assert queue["succeeded"] == {"lastMinute": 3, "lastHour": 3}
    assert queue["failed"] == {"lastMinute": 1, "lastHour": 1}
    assert queue["workers"] == {"online": 1, "busySlots": 1, "totalSlots": 4}
    assert body["total"]["counts"] == queue["counts"] and body["total"]["dlq"] == 1
    assert body["workers"][0]["id"] == "w1" and body["redisAvailable"] is True
    assert body["finishedCountsAsOf"] is not None
