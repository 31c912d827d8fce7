"""Worker pieces that need real Postgres and Redis but no subprocess."""

from __future__ import annotations

import uuid

import pytest

from jobs.models import Job
from jobs.services import JobSpec, Outcome, claim_jobs, enqueue_job, enqueue_jobs
from jobs.states import JobState
from workers import broker, keys
from workers.runtime import Worker, WorkerOptions

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_claim_retried_after_a_lost_reply_takes_its_jobs_back() -> None:
    ids = [r.job.id for r in enqueue_jobs([JobSpec("taskforge.noop") for _ in range(3)])]
    token = uuid.uuid4()
    claim_jobs(worker_id="w", ids=ids, lease_seconds=30, token=token)  # committed; reply "lost"
    again = claim_jobs(worker_id="w", ids=ids, lease_seconds=30, token=token, retrying=True)
    assert sorted(j.id for j in again) == sorted(ids)
    assert all(j.lease_token == token for j in again)
    assert set(Job.objects.values_list("attempt_count", flat=True)) == {1}  # no attempt wasted
    assert claim_jobs(worker_id="other", ids=ids, lease_seconds=30, token=uuid.uuid4(), retrying=True) == []


def test_settle_isolates_an_outcome_postgres_refuses() -> None:
    enqueue_jobs([JobSpec("taskforge.noop"), JobSpec("taskforge.noop")])
    good, bad = claim_jobs(
        worker_id="w", ids=broker.pop_ready(["jobs:ready"], 10, fair=False).ids, lease_seconds=30
    )
    poisoned = Outcome(bad.id, bad.lease_token, JobState.SUCCEEDED, result="{not json")
    worker = Worker(WorkerOptions(worker_id="w"))
    settled = worker._settle([Outcome.success(good, {"ok": 1}), poisoned])
    assert settled == {good.id: JobState.SUCCEEDED}
    assert Job.objects.get(id=bad.id).state == JobState.RUNNING  # left to lease expiry


def test_pops_and_acks_stay_under_luas_unpack_limit(redis_db) -> None:
    enqueue_jobs([JobSpec("taskforge.noop") for _ in range(1000)])
    enqueue_jobs([JobSpec("taskforge.noop") for _ in range(500)])
    many = [uuid.uuid4() for _ in range(9000)]
    redis_db.zadd(keys.INFLIGHT, {str(i): 1 for i in many})
    popped = broker.pop_ready(["jobs:ready"], 5000, fair=False, ack=many).ids
    assert len(popped) == broker.MAX_SCRIPT_IDS == 1000  # capped: nothing lost in between
    assert redis_db.zcard(keys.queue_key("jobs:ready")) == 500
    assert redis_db.zcard(keys.INFLIGHT) == 1000  # the 9,000 acked, the 1,000 popped recorded


def test_an_idempotent_repeat_matches_numbers_as_postgres_stores_them() -> None:
    first = enqueue_job("taskforge.echo", {"a": 1e23}, idempotency_key="big")
    again = enqueue_job("taskforge.echo", {"a": 1e23}, idempotency_key="big")
    assert not again.created and again.job.id == first.job.id
