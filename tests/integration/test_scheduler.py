"""The scheduler's duties, called directly against the real Postgres and Redis."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from dlq.models import DeadLetter
from jobs.models import Job, JobEvent
from jobs.services import JobSpec, enqueue_job, enqueue_jobs
from jobs.states import JobState
from scheduler import services
from tests.conftest import claim_all
from workers import broker, keys

pytestmark = pytest.mark.django_db(transaction=True)


def test_due_jobs_are_promoted_and_published_never_early(redis_db) -> None:
    due = enqueue_job("taskforge.noop", delay_ms=0).job
    later = enqueue_job("taskforge.noop", delay_ms=60_000).job
    Job.objects.filter(id=due.id).update(state=JobState.PENDING, next_run_at=timezone.now(), queued_at=None)
    redis_db.flushdb()
    assert services.promote_due_jobs() == 1
    assert Job.objects.get(id=due.id).state == JobState.QUEUED
    assert Job.objects.get(id=later.id).state == JobState.PENDING
    assert redis_db.zscore(keys.queue_key("jobs:ready"), str(due.id)) is not None
    assert redis_db.zscore(keys.queue_key("jobs:ready"), str(later.id)) is None
    assert services.promote_due_jobs() == 0


def test_expired_leases_requeue_or_dead_letter(redis_db) -> None:
    enqueue_job("taskforge.noop", max_attempts=3, idempotency_key="retry")
    enqueue_job("taskforge.noop", max_attempts=1, idempotency_key="last")
    assert len(claim_all(lease_seconds=30)) == 2
    Job.objects.update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    assert services.expire_leases() == 2
    by_key = {j.idempotency_key: j for j in Job.objects.all()}
    assert by_key["retry"].state == JobState.QUEUED and by_key["retry"].last_error == "lease expired"
    assert by_key["last"].state == JobState.DLQ
    assert DeadLetter.objects.get(job_id=by_key["last"].id).reason == "attempts exhausted"
    assert redis_db.zscore(keys.queue_key("jobs:ready"), str(by_key["retry"].id)) is not None
    types = list(
        JobEvent.objects.filter(job_id=by_key["last"].id).order_by("id").values_list("type", flat=True)
    )
    assert types[-2:] == ["lease_expired", "dead_lettered"]


def test_a_live_lease_is_left_alone() -> None:
    enqueue_job("taskforge.noop")
    claim_all(lease_seconds=30)
    assert services.expire_leases() == 0
    assert Job.objects.get().state == JobState.RUNNING


def test_flushed_redis_is_resynced_from_postgres(redis_db) -> None:
    enqueue_jobs([JobSpec("taskforge.noop") for _ in range(50)])
    redis_db.flushdb()
    assert services.resync_if_redis_lost() == 50
    assert redis_db.zcard(keys.queue_key("jobs:ready")) == 50
    assert broker.epoch_exists()
    assert services.resync_if_redis_lost() == 0  # epoch set: steady state costs nothing


def test_stale_inflight_ids_go_back_to_their_queue(redis_db) -> None:
    job = enqueue_job("taskforge.noop").job
    assert broker.pop_ready(["jobs:ready"], 10, fair=False).ids == [job.id]  # then the worker "dies"
    redis_db.zadd(keys.INFLIGHT, {str(job.id): 0})  # popped long ago
    assert services.return_stale_inflight() == 1
    assert redis_db.zscore(keys.INFLIGHT, str(job.id)) is None
    assert broker.pop_ready(["jobs:ready"], 10, fair=False).ids == [job.id]


def test_sweep_republishes_a_job_whose_publish_was_lost(redis_db) -> None:
    lost = enqueue_job("taskforge.noop").job
    fine = enqueue_job("taskforge.noop").job
    Job.objects.update(queued_at=timezone.now() - timedelta(minutes=1))
    redis_db.zrem(keys.queue_key("jobs:ready"), str(lost.id))
    assert services.sweep_unpublished() == 1
    assert redis_db.zscore(keys.queue_key("jobs:ready"), str(lost.id)) is not None
    assert redis_db.zcard(keys.queue_key("jobs:ready")) == 2  # `fine` was never missing
    redis_db.zrem(keys.queue_key("jobs:ready"), str(fine.id))
    assert services.sweep_unpublished() == 0  # at most one sweep every 2 s, cluster-wide
    redis_db.delete(keys.lock_key(services.SWEEP_LOCK))
    assert services.sweep_unpublished() == 1
    assert redis_db.zscore(keys.queue_key("jobs:ready"), str(fine.id)) is not None


def test_sweep_leaves_a_job_a_worker_claimed_between_its_two_reads(redis_db, monkeypatch) -> None:
    job = enqueue_job("taskforge.noop").job
    Job.objects.update(queued_at=timezone.now() - timedelta(minutes=1))
    check = broker.missing_from_redis

    def worker_claims_meanwhile(jobs):
        # A worker pops, claims (commit) and acknowledges the job after the sweep read its page.
        assert [claimed.id for claimed in claim_all("w")] == [job.id]  # claim_all also acknowledges
        return check(jobs)

    monkeypatch.setattr(broker, "missing_from_redis", worker_claims_meanwhile)
    assert services.sweep_unpublished() == 0
    assert redis_db.zcard(keys.queue_key("jobs:ready")) == 0  # not re-published: it is RUNNING
    assert Job.objects.get(id=job.id).state == JobState.RUNNING


def test_pruning_deletes_old_finished_jobs_with_their_events() -> None:
    old, recent = (enqueue_job("taskforge.noop").job for _ in range(2))
    now = timezone.now()
    Job.objects.filter(id=old.id).update(state=JobState.CANCELED, finished_at=now - timedelta(days=10))
    Job.objects.filter(id=recent.id).update(state=JobState.CANCELED, finished_at=now)
    assert services.prune_finished_jobs(retention_days=7) == 1
    assert list(Job.objects.values_list("id", flat=True)) == [recent.id]
    assert not JobEvent.objects.filter(job_id=old.id).exists()


def test_fair_pops_take_turns_between_queues() -> None:
    enqueue_jobs([JobSpec("taskforge.noop", queue="a") for _ in range(10)])
    enqueue_jobs([JobSpec("taskforge.noop", queue="b") for _ in range(10)])
    popped = broker.pop_ready(["a", "b"], 6, fair=True).ids
    queues = list(Job.objects.filter(id__in=popped).values_list("queue", flat=True))
    assert sorted(queues) == ["a", "a", "a", "b", "b", "b"]
    ordered = broker.pop_ready(["a", "b"], 6, fair=False).ids
    assert set(Job.objects.filter(id__in=ordered).values_list("queue", flat=True)) == {"a"}


def test_a_job_enqueued_while_redis_is_down_runs_after_it_returns(redis_db, monkeypatch) -> None:
    import redis as redis_lib

    down = redis_lib.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=None)
    monkeypatch.setattr(broker, "client", lambda: down)
    job = enqueue_job("taskforge.noop").job  # committed; the publish fails quietly
    monkeypatch.undo()
    assert Job.objects.get(id=job.id).state == JobState.QUEUED
    assert redis_db.zscore(keys.queue_key("jobs:ready"), str(job.id)) is None
    Job.objects.filter(id=job.id).update(queued_at=timezone.now() - timedelta(minutes=1))
    assert services.sweep_unpublished() == 1
    assert broker.pop_ready(["jobs:ready"], 10, fair=False).ids == [job.id]
