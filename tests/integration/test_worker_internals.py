"""Worker pieces that need real Postgres and Redis but no subprocess."""

from __future__ import annotations

import time
import uuid

import pytest
from django.db import OperationalError
from django.utils import timezone

from jobs.models import Job
from jobs.services import (
    JobSpec,
    Outcome,
    claim_jobs,
    enqueue_job,
    enqueue_jobs,
    release_jobs,
    update_queue_settings,
)
from jobs.states import JobState
from tests.conftest import wait_for
from tests.handlers import EXECUTIONS_KEY
from workers import broker, keys, runtime
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


def _capacity_after(worker: Worker, finished: int, seconds: float) -> int:
    """The claim loop's capacity once `finished` attempts ended over the last `seconds`."""
    worker._rate_mark = (time.monotonic() - seconds, worker._finished)
    worker._finished += finished
    with worker._lock:
        return worker._capacity()


def test_the_default_prefetch_follows_how_fast_slots_finish() -> None:
    worker = Worker(WorkerOptions(worker_id="w", concurrency=5))
    with worker._lock:
        assert worker._capacity() == 10  # before any rate is known: prefetch = concurrency
    # 1,000 attempts a second: what the slots finish in 50 ms, about 50, is claimed ahead.
    assert 5 + 45 <= _capacity_after(worker, 1000, 1.0) <= 5 + 50
    assert _capacity_after(worker, 100_000, 1.0) == 5 + runtime.MAX_ADAPTIVE_PREFETCH
    # Long jobs (2 a second): back to concurrency, so they are not hoarded.
    assert _capacity_after(worker, 2, 1.0) == 10
    # An explicit --prefetch never moves.
    fixed = Worker(WorkerOptions(worker_id="w2", concurrency=5, prefetch=0))
    assert _capacity_after(fixed, 100_000, 1.0) == 5


def test_queues_running_dry_reset_the_adaptive_prefetch(redis_db, monkeypatch) -> None:
    """After a burst of short jobs, what comes next after a pause may be long: no hoarding."""
    monkeypatch.setattr(runtime, "IDLE_POLL_SECONDS", 0.01)  # the empty pop's wait
    enqueue_jobs([JobSpec("taskforge.noop", queue="dry") for _ in range(3)])
    worker = Worker(WorkerOptions(worker_id="w", concurrency=5, queues=["dry"]))
    fast = 5 + runtime.MAX_ADAPTIVE_PREFETCH
    assert _capacity_after(worker, 100_000, 1.0) == fast
    assert len(worker._pop(fast)) == 3
    with worker._lock:
        assert worker._capacity() == fast  # jobs were there: the rate still stands
    assert worker._pop(fast) == []
    with worker._lock:
        assert worker._capacity() == 10  # dry: back to concurrency, until the rate shows again
    assert _capacity_after(worker, 100_000, 1.0) == fast
    # Jobs held back by a rate limit are not a dry queue: the rate still stands.
    update_queue_settings("dry", rate_limit_per_sec=1)
    enqueue_jobs([JobSpec("taskforge.noop", queue="dry") for _ in range(3)])
    assert len(worker._pop(fast)) == 1  # one second's worth
    assert worker._pop(fast) == []  # throttled
    with worker._lock:
        assert worker._capacity() == fast
    fixed = Worker(WorkerOptions(worker_id="w2", concurrency=5, prefetch=3, queues=["dry"]))
    assert fixed._pop(8) == []
    with fixed._lock:
        assert fixed._capacity() == 8  # an explicit --prefetch never moves


def test_claiming_waits_while_the_settler_is_behind() -> None:
    worker = Worker(WorkerOptions(worker_id="w", concurrency=5, prefetch=5))
    job = claim_jobs(worker_id="w", ids=[enqueue_job("taskforge.noop").job.id], lease_seconds=30)[0]
    with worker._lock:
        assert worker._claimable() == 10  # idle: slots and prefetch are free
        worker._busy = 9
        assert worker._claimable() == 0  # 1 free, under half the prefetch: wait for more
        worker._busy = 3
        assert worker._claimable() == 7  # a slot would idle: claim now
        # Finished attempts the settler has not written yet: past the bound, nothing is claimed,
        # however idle the slots are, so a slow Postgres cannot make held jobs pile up.
        done = {
            uuid.uuid4(): runtime._Held(job, worker._context(job), done=True)
            for _ in range(runtime.MAX_UNSETTLED)
        }
        worker._held.update(done)
        worker._busy = 0
        assert worker._claimable() == 0
        worker._held.pop(next(iter(done)))
        assert worker._claimable() == 10


def _hoarded_now(worker: Worker) -> dict[uuid.UUID, uuid.UUID]:
    worker._hoard_checked_at = 0.0  # the claim loop checks at most every GIVE_BACK_SECONDS / 4
    with worker._lock:
        return worker._hoarded()


def test_prefetched_jobs_beyond_a_shrunk_prefetch_go_back_once_they_waited(redis_db, monkeypatch) -> None:
    """Slots stuck on long jobs: what the old, larger prefetch claimed goes back to the queue."""
    worker = Worker(WorkerOptions(worker_id="w", concurrency=1))
    jobs = claim_jobs(
        worker_id="w", ids=[enqueue_job("tests.record").job.id for _ in range(5)], lease_seconds=30
    )
    claimed_at = time.monotonic()
    with worker._lock:
        for n, job in enumerate(jobs):  # claimed in this order, the first one running
            held = runtime._Held(job, worker._context(job), claimed_at=claimed_at + n * 0.001)
            held.started = n == 0
            worker._held[job.id] = held
            worker._busy += 1
            worker._work.put(held)
        worker._prefetch = 1  # the rate now says: one job ahead is enough
    worker._unacked = [job.id for job in jobs]
    assert _hoarded_now(worker) == {}  # they have not waited long enough yet
    for held in worker._held.values():
        held.claimed_at -= runtime.GIVE_BACK_SECONDS + 0.1
    hoarded = _hoarded_now(worker)
    assert _hoarded_now(worker) == {}  # marked: never given back twice
    newest = jobs[2:]  # 4 waiting, 1 may stay: the 3 that would start last go back
    assert hoarded == {job.id: job.lease_token for job in newest}

    # Postgres fails the first release: the jobs stay held (their leases renewed), not left
    # to lease expiry, which would count an attempt they never ran; the next turn retries.
    calls = []

    def release_fails_once(**kwargs):
        calls.append(kwargs)
        if len(calls) == 1:
            raise OperationalError("the server closed the connection")
        return release_jobs(**kwargs)

    monkeypatch.setattr(runtime, "release_jobs", release_fails_once)
    worker._give_back(hoarded)
    assert set(worker._held) == {job.id for job in jobs} and worker._giving_back == hoarded
    assert worker._claim_once()  # retried first, before any pop
    assert len(calls) == 2 and worker._giving_back == {}
    assert set(worker._held) == {jobs[0].id, jobs[1].id}
    assert worker._unacked == [jobs[0].id, jobs[1].id]  # the given-back ids were acked already
    for job in newest:
        stored = Job.objects.get(id=job.id)
        assert (stored.state, stored.attempt_count, stored.lease_token) == (JobState.QUEUED, 0, None)
        assert stored.queued_at == job.queued_at  # its place in the queue, not behind the backlog
        assert redis_db.zscore(keys.queue_key(stored.queue), str(job.id)) is not None
        assert redis_db.zscore(keys.INFLIGHT, str(job.id)) is None
    assert Job.objects.get(id=jobs[1].id).state == JobState.RUNNING
    # the slots skip what went back: the running one was taken already, so only jobs[1] runs
    worker._work.get()
    worker._work.put(None)
    worker._slot_loop()
    assert redis_db.lrange(EXECUTIONS_KEY, 0, -1) == [f"{jobs[1].id}:1"]
    assert worker._busy == 1  # the running one, whose slot is elsewhere


def test_a_claimed_job_whose_lease_went_while_it_waited_is_not_run(redis_db) -> None:
    worker = Worker(WorkerOptions(worker_id="w", concurrency=1))
    lost, kept = claim_jobs(
        worker_id="w", ids=[enqueue_job("tests.record").job.id for _ in range(2)], lease_seconds=30
    )
    with worker._lock:
        for job in (lost, kept):
            worker._held[job.id] = runtime._Held(job, worker._context(job))
            worker._busy += 1
            worker._work.put(worker._held[job.id])
    worker._held[lost.id].ctx.mark_lease_lost()  # e.g. the heartbeat found it expired or moved
    worker._work.put(None)
    worker._slot_loop()  # runs what is queued, then stops at the None
    assert redis_db.lrange(EXECUTIONS_KEY, 0, -1) == [f"{kept.id}:1"]
    assert worker._busy == 0 and worker._held[lost.id].done
    outcomes = []
    while not worker._outcomes.empty():
        outcomes.append(worker._outcomes.get_nowait())
    assert [outcome.job_id for outcome in outcomes] == [kept.id]  # only the run one settles


def test_a_worker_given_queues_wakes_only_for_them(redis_db) -> None:
    """Each wake-up names its queue; a worker dedicated to other queues would pop for nothing."""
    mine, other = f"mine-{uuid.uuid4().hex[:8]}", f"other-{uuid.uuid4().hex[:8]}"
    subscribed = redis_db.pubsub_numsub(keys.WAKEUP_CHANNEL)[0][1]
    picky, any_queue = broker.Wakeup([mine]), broker.Wakeup()
    picky.start()
    any_queue.start()
    wait_for(
        lambda: redis_db.pubsub_numsub(keys.WAKEUP_CHANNEL)[0][1] >= subscribed + 2,
        what="both listeners subscribed",
    )
    now = timezone.now()
    broker.publish([broker.ReadyJob(uuid.uuid4(), other, 0, now)])
    wait_for(any_queue.event.is_set, what="a worker of every queue woken by another queue")
    assert not picky.event.is_set()  # the same message reached it: not its queue
    broker.publish([broker.ReadyJob(uuid.uuid4(), mine, 0, now)])
    wait_for(picky.event.is_set, what="the dedicated worker woken by its own queue")


def test_a_settled_attempt_counts_even_if_a_heartbeat_drops_it_before_it_is_recorded(
    redis_db, monkeypatch
) -> None:
    from workers import metrics

    metrics.flush()  # what earlier tests recorded goes before this test's Redis is emptied
    redis_db.flushdb()
    worker = Worker(WorkerOptions(worker_id="w", concurrency=1))
    (job,) = claim_jobs(worker_id="w", ids=[enqueue_job("taskforge.noop").job.id], lease_seconds=30)
    worker._held[job.id] = runtime._Held(job, worker._context(job), done=True)
    settle = worker._settle

    def settle_then_beat(outcomes: list[Outcome]) -> dict[uuid.UUID, str] | None:
        settled = settle(outcomes)
        worker._beat()  # its renewal no longer finds the job RUNNING, so it drops it
        assert job.id not in worker._held
        return settled

    monkeypatch.setattr(worker, "_settle", settle_then_beat)
    assert worker._flush([Outcome.success(job, None)])
    metrics.flush()
    assert broker.throughput(2).get((job.queue, "succeeded")) == 1
