"""Services on the real Postgres and Redis: guarded, fenced, batched, transactional."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from dlq.models import DeadLetter
from jobs.errors import IdempotencyKeyReused, JobValidationError, PayloadTooLarge, UnknownJobType
from jobs.models import Job, JobEvent
from jobs.services import (
    JobSpec,
    Outcome,
    claim_jobs,
    enqueue_job,
    enqueue_jobs,
    release_jobs,
    renew_leases,
    settle_jobs,
)
from jobs.states import JobState
from tests.conftest import claim_all, wait_for
from workers import keys

pytestmark = pytest.mark.django_db(transaction=True)  # real commits: on_commit publishes run


def _events(job_id: uuid.UUID) -> list[str]:
    return list(JobEvent.objects.filter(job_id=job_id).order_by("id").values_list("type", flat=True))


def _in_ready_queue(redis_db, job: Job) -> bool:
    return redis_db.zscore(keys.queue_key(job.queue), str(job.id)) is not None


def test_enqueue_commits_then_publishes(redis_db) -> None:
    result = enqueue_job("taskforge.echo", {"x": 1}, priority=5)
    assert result.created and result.job.state == JobState.QUEUED
    assert _in_ready_queue(redis_db, result.job)
    assert _events(result.job.id) == ["created"]


def test_handler_defaults_apply_and_explicit_options_win() -> None:
    job = enqueue_job("tests.defaults").job
    assert (job.queue, job.max_attempts, job.initial_delay_ms, job.backoff) == ("special", 2, 10, 3.0)
    job = enqueue_job("tests.defaults", queue="other", max_attempts=7).job
    assert (job.queue, job.max_attempts) == ("other", 7)


def test_delayed_jobs_wait_in_postgres_only(redis_db) -> None:
    job = enqueue_job("taskforge.noop", delay_ms=60_000).job
    assert job.state == JobState.PENDING and job.next_run_at > timezone.now() + timedelta(seconds=50)
    assert not _in_ready_queue(redis_db, job)
    past = enqueue_job("taskforge.noop", run_at=timezone.now() - timedelta(seconds=1)).job
    assert past.state == JobState.QUEUED


def test_validation_errors_create_nothing() -> None:
    with pytest.raises(UnknownJobType):
        enqueue_job("no.such.type")
    with pytest.raises(JobValidationError):
        enqueue_job("taskforge.noop", priority=500)
    with pytest.raises(JobValidationError):
        enqueue_job("taskforge.noop", {"when": timezone.now()})  # not JSON
    with pytest.raises(PayloadTooLarge):
        enqueue_job("taskforge.noop", {"blob": "x" * (1 << 20)})
    assert Job.objects.count() == 0


def test_enqueue_in_a_rolled_back_transaction_leaves_nothing(redis_db) -> None:
    with pytest.raises(RuntimeError), transaction.atomic():
        enqueue_job("taskforge.noop", idempotency_key="k1")
        raise RuntimeError("the caller's own write failed")
    assert Job.objects.count() == 0
    assert redis_db.zcard(keys.queue_key("jobs:ready")) == 0


def test_enqueue_reaches_redis_only_after_the_callers_commit(redis_db) -> None:
    with transaction.atomic():
        job = enqueue_job("taskforge.noop").job
        assert not _in_ready_queue(redis_db, job)
    assert _in_ready_queue(redis_db, job)


def test_idempotent_repeat_returns_the_same_job() -> None:
    first = enqueue_job("taskforge.echo", {"a": 1}, idempotency_key="order-1")
    again = enqueue_job("taskforge.echo", {"a": 1}, idempotency_key="order-1")
    assert first.created and not again.created and again.job.id == first.job.id
    with pytest.raises(IdempotencyKeyReused):
        enqueue_job("taskforge.echo", {"a": 2}, idempotency_key="order-1")
    assert enqueue_job("taskforge.echo", {"a": 1}, idempotency_key="order-1", queue="other").created
    assert Job.objects.count() == 2


def test_a_batch_is_all_or_nothing() -> None:
    enqueue_job("taskforge.echo", {"a": 1}, idempotency_key="dup")
    specs = [JobSpec("taskforge.noop"), JobSpec("taskforge.echo", {"a": 2}, idempotency_key="dup")]
    with pytest.raises(IdempotencyKeyReused):
        enqueue_jobs(specs)
    assert Job.objects.count() == 1
    results = enqueue_jobs([JobSpec("taskforge.noop") for _ in range(300)])
    assert len(results) == 300 and all(r.created for r in results)


@pytest.mark.parametrize(
    "payload", ["a JSON string", '{"looks": "like JSON"}', 12, 1.5, [1, "2"], True, {"a": [None]}]
)
def test_every_json_payload_comes_back_as_sent_one_by_one_in_batches_and_claimed(payload) -> None:
    one = enqueue_job("taskforge.echo", payload).job
    (batched, _) = [
        r.job for r in enqueue_jobs([JobSpec("taskforge.echo", payload), JobSpec("taskforge.noop")])
    ]
    assert one.payload == payload and batched.payload == payload
    claimed = {c.id: c.payload for c in claim_jobs(worker_id="w", ids=[one.id, batched.id], lease_seconds=30)}
    assert claimed == {one.id: payload, batched.id: payload}
    assert Job.objects.get(id=one.id).payload == payload


def test_claim_is_guarded_and_counts_the_attempt() -> None:
    job = enqueue_job("taskforge.noop").job
    claimed = claim_jobs(worker_id="w1", ids=[job.id], lease_seconds=30)
    assert [c.id for c in claimed] == [job.id] and claimed[0].attempt == 1
    assert claim_jobs(worker_id="w2", ids=[job.id], lease_seconds=30) == []  # already RUNNING
    job.refresh_from_db()
    assert job.state == JobState.RUNNING and job.lease_owner == "w1" and job.attempt_count == 1
    assert _events(job.id) == ["created", "claimed"]


# (statement, what the burst leaves, the indexes of jobs its plan may use besides the primary key)
_BY_ID_STATEMENTS = [
    ("CLAIM_JOBS", "QUEUED", set()),
    ("QUEUED_JOBS_BY_ID", "QUEUED", set()),
    ("CANCEL_JOBS", "QUEUED", set()),
    ("DEAD_LETTER_JOBS", "QUEUED", set()),
    ("ADOPT_CLAIMED", "RUNNING", set()),
    ("RENEW_LEASES", "RUNNING", set()),
    ("SETTLE_JOBS", "RUNNING", set()),
    ("RELEASE_JOBS", "RUNNING", set()),
    # Finding the due ones goes by a partial index (with stale statistics the planner may pick
    # either); only then by id.
    ("PROMOTE_DUE_JOBS", "DUE", {"jobs_due_idx", "jobs_active_idx"}),
    ("EXPIRE_LEASES", "EXPIRED", {"jobs_lease_expiry_idx"}),
]


@pytest.mark.parametrize(("statement", "burst", "also"), _BY_ID_STATEMENTS)
def test_lookups_by_id_use_the_primary_key_when_statistics_miss_a_burst(statement, burst, also) -> None:
    """As right after a burst of enqueues or claims, before autovacuum analyzes the table again:
    the statistics say few jobs are QUEUED, RUNNING or PENDING, and a partial index on state
    looks cheap (reading through it took seconds for 1,000 ids behind 20,000 jobs).
    """
    import psycopg
    from django.db import connection

    from jobs import sql

    to_running = (
        "UPDATE jobs SET state = 'RUNNING', lease_owner = 'w', lease_token = gen_random_uuid(),"
        " lease_expires_at = now() + interval '1 minute', started_at = now() WHERE state = 'QUEUED'"
    )
    enqueue_jobs([JobSpec("taskforge.noop") for _ in range(3000)])
    with connection.cursor() as cursor:  # they all ran, and the statistics saw that
        cursor.execute(to_running)
        cursor.execute("UPDATE jobs SET state = 'SUCCEEDED', lease_token = NULL, finished_at = now()")
        cursor.execute("ANALYZE jobs")
    delay = 60_000 if burst == "DUE" else None
    enqueue_jobs([JobSpec("taskforge.noop", delay_ms=delay) for _ in range(3000)])  # then a burst
    with connection.cursor() as cursor:
        if burst in ("RUNNING", "EXPIRED"):
            cursor.execute(to_running)
        if burst == "EXPIRED":
            cursor.execute(
                "UPDATE jobs SET lease_expires_at = now() - interval '1 second' WHERE state = 'RUNNING'"
            )
        if burst == "DUE":
            cursor.execute(
                "UPDATE jobs SET next_run_at = now() - interval '1 second' WHERE state = 'PENDING'"
            )
    state = {"DUE": "PENDING", "EXPIRED": "RUNNING"}.get(burst, burst)
    ids = list(Job.objects.filter(state=state).values_list("id", flat=True)[:50])
    n = len(ids)
    params = {
        **{name: [None] * n for name in ("results", "errors", "tracebacks", "delays", "reasons")},
        "ids": ids,
        "tokens": [uuid.uuid4()] * n,
        "states": ["SUCCEEDED"] * n,
        "exception_classes": [None] * n,
        "worker": "w",
        "token": uuid.uuid4(),
        "lease_ms": 30_000,
        "actor": "test",
        "reason": "test",
        "limit": 50,
    }
    with psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(f"EXPLAIN {getattr(sql, statement)}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    used = set(re.findall(r"\bjobs_\w+", plan))
    assert "jobs_pkey" in used and used <= {"jobs_pkey", *also}, plan


def test_settle_success_is_fenced_by_the_lease_token() -> None:
    enqueue_job("taskforge.echo", {"v": 1})
    (claimed,) = claim_all()
    stale = Outcome.success(claimed, {"v": "stale"})
    stale = Outcome(stale.job_id, uuid.uuid4(), stale.state, result=stale.result)
    assert settle_jobs(worker_id="w", outcomes=[stale]) == {}
    assert settle_jobs(worker_id="w", outcomes=[Outcome.success(claimed, {"v": 2})]) == {
        claimed.id: "SUCCEEDED"
    }
    job = Job.objects.get(id=claimed.id)
    assert job.result == {"v": 2} and job.finished_at and job.lease_token is None
    # settling again (a duplicate flush) changes nothing
    assert settle_jobs(worker_id="w", outcomes=[Outcome.success(claimed, {"v": 3})]) == {}


def test_failure_schedules_a_retry_with_backoff() -> None:
    enqueue_job("taskforge.noop", initial_delay_ms=5_000)
    (claimed,) = claim_all()
    before = timezone.now()
    settle_jobs(worker_id="w", outcomes=[Outcome.failure(claimed, RuntimeError("boom"), permanent=False)])
    job = Job.objects.get(id=claimed.id)
    assert job.state == JobState.RETRYING and job.last_error == "RuntimeError: boom"
    assert before + timedelta(seconds=4.5) < job.next_run_at < before + timedelta(seconds=6)
    assert _events(job.id)[-2:] == ["failed", "retry_scheduled"]
    failed = JobEvent.objects.get(job_id=job.id, type="failed")
    assert "RuntimeError: boom" in failed.details["traceback"]


def test_exhaustion_and_permanent_errors_dead_letter() -> None:
    enqueue_job("taskforge.noop", max_attempts=1, idempotency_key="a")
    enqueue_job("taskforge.noop", max_attempts=5, idempotency_key="b")
    first, second = sorted(claim_all(), key=lambda c: c.policy.max_attempts)
    settle_jobs(
        worker_id="w",
        outcomes=[
            Outcome.failure(first, RuntimeError("x"), permanent=False),
            Outcome.failure(second, ValueError("bad input"), permanent=True),
        ],
    )
    letters = {d.job_id: d for d in DeadLetter.objects.all()}
    assert letters[first.id].reason == "attempts exhausted" and letters[first.id].attempts == 1
    assert letters[second.id].reason == "permanent error"
    assert letters[second.id].last_error == "ValueError: bad input"
    assert set(Job.objects.values_list("state", flat=True)) == {JobState.DLQ}
    assert _events(first.id)[-2:] == ["failed", "dead_lettered"]


def test_a_requested_cancel_ends_canceled_never_succeeded() -> None:
    enqueue_job("taskforge.noop")
    (claimed,) = claim_all()
    Job.objects.filter(id=claimed.id).update(cancel_requested=True)
    assert renew_leases(held={claimed.id: claimed.lease_token}, lease_seconds=30) == {claimed.id: True}
    settle_jobs(worker_id="w", outcomes=[Outcome.success(claimed, None)])
    assert Job.objects.get(id=claimed.id).state == JobState.CANCELED


def test_heartbeat_renews_only_leases_still_held() -> None:
    enqueue_jobs([JobSpec("taskforge.noop"), JobSpec("taskforge.noop")])
    kept, lost = claim_all(lease_seconds=1)
    renewed = renew_leases(held={kept.id: kept.lease_token, lost.id: uuid.uuid4()}, lease_seconds=60)
    assert renewed == {kept.id: False}
    assert Job.objects.get(id=kept.id).lease_expires_at > timezone.now() + timedelta(seconds=50)


def test_release_requeues_without_counting_the_attempt(redis_db) -> None:
    enqueue_job("taskforge.noop")
    (claimed,) = claim_all()
    assert release_jobs(worker_id="w", held={claimed.id: claimed.lease_token}) == 1
    job = Job.objects.get(id=claimed.id)
    assert job.state == JobState.QUEUED and job.attempt_count == 0 and job.lease_token is None
    assert _in_ready_queue(redis_db, job)
    assert _events(job.id) == ["created", "claimed", "released"]


def test_ready_queue_orders_by_priority_then_age() -> None:
    low = enqueue_job("taskforge.noop", priority=-5).job
    old = enqueue_job("taskforge.noop").job
    new = enqueue_job("taskforge.noop").job
    high = enqueue_job("taskforge.noop", priority=50).job
    from workers import broker

    assert broker.pop_ready(["jobs:ready"], 10, fair=False).ids == [high.id, old.id, new.id, low.id]


def test_a_script_runs_when_redis_forgot_it_and_its_connection_died_under_it(redis_db, monkeypatch) -> None:
    """As after a Redis restart mid-command: the retry reconnects, NOSCRIPT loads the script."""
    from workers import broker

    queue = f"q-{uuid.uuid4().hex[:8]}"
    jobs = [broker.ReadyJob(uuid.uuid4(), queue, 0, timezone.now()) for _ in range(2)]
    broker.publish(jobs[:1])  # the script loaded, the pooled connection open
    redis_db.script_flush()
    pool = broker.client().connection_pool
    checkout = pool.get_connection
    killed = []

    def checkout_then_kill(*args: object, **kwargs: object) -> object:
        """Kills the connection after the pool's own check of it, so only a retry can help."""
        conn = checkout(*args, **kwargs)
        conn.send_command("CLIENT", "ID")
        client_id = conn.read_response()
        killer = pool.connection_class(**pool.connection_kwargs)
        killer.send_command("CLIENT", "KILL", "ID", client_id)
        killed.append(killer.read_response())
        killer.disconnect()
        monkeypatch.setattr(pool, "get_connection", checkout)  # once
        return conn

    monkeypatch.setattr(pool, "get_connection", checkout_then_kill)
    broker.publish(jobs[1:])
    assert killed == [1]
    assert set(redis_db.zrange(keys.queue_key(queue), 0, -1)) == {str(job.id) for job in jobs}


def test_one_publish_fills_every_queue_of_a_large_batch_and_wakes_workers(redis_db) -> None:
    from workers import broker

    # Pub/sub channels span Redis databases: other test processes' wake-ups arrive too.
    big, small = f"big-{uuid.uuid4().hex[:8]}", f"small-{uuid.uuid4().hex[:8]}"
    now = timezone.now()
    jobs = [broker.ReadyJob(uuid.uuid4(), big, i % 7, now) for i in range(2_500)]
    jobs += [broker.ReadyJob(uuid.uuid4(), small, 0, now) for _ in range(3)]
    wakeups = redis_db.pubsub(ignore_subscribe_messages=True)
    wakeups.subscribe(keys.WAKEUP_CHANNEL)
    wakeups.get_message(timeout=1)  # the subscribe confirmation
    broker.publish(jobs)
    for queue, expected in ((big, jobs[:2_500]), (small, jobs[2_500:])):
        stored = dict(redis_db.zrange(keys.queue_key(queue), 0, -1, withscores=True))
        assert stored == {str(j.id): broker.ready_score(j.priority, j.queued_at) for j in expected}
    assert redis_db.smembers(keys.QUEUES) >= {big, small}
    woken: list[str] = []

    def both_woken() -> bool:
        message = wakeups.get_message(timeout=0.1)
        if message and message["data"] in (big, small):
            woken.append(message["data"])
        return {big, small} <= set(woken)

    wait_for(both_woken, timeout=5, interval=0, what="a wake-up per queue")
    assert sorted(woken) == sorted([big, small])  # one each, not one per job
    wakeups.close()


def _nested(depth: int) -> object:
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        ({"s": "a\x00b"}, "contains a NUL character"),
        ({"k\x00": 1}, "contains a NUL character"),
        (["x", {"s": "\\\x00"}], "contains a NUL character"),  # an escaped backslash, then NUL
        (["\ud800"], "contains a lone surrogate"),
        ({"t": ("a\x00",)}, "contains a NUL character"),  # a tuple is written as a list
        (("x", "\ud800"), "contains a lone surrogate"),
        ({"\udfff": 1}, "contains a lone surrogate"),
        (_nested(64), "nested deeper than 64 levels"),
        (_nested(5_000), "nested deeper than 64 levels"),  # deeper than json.dumps recurses
        ({"when": timezone.now()}, "is not JSON (Object of type datetime is not JSON serializable)"),
        ([float("nan")], "is not JSON"),
    ],
    ids=[
        "nul",
        "nul-key",
        "nul-after-backslash",
        "surrogate",
        "nul-in-tuple",
        "surrogate-in-tuple",
        "surrogate-key",
        "deep",
        "deeper",
        "type",
        "nan",
    ],
)
def test_payloads_jsonb_would_refuse_are_refused_with_the_reason(payload, problem) -> None:
    with pytest.raises(JobValidationError) as caught:
        enqueue_job("taskforge.echo", payload)
    assert caught.value.details["payload"][0].startswith(problem)
    assert Job.objects.count() == 0


@pytest.mark.parametrize(
    "payload",
    [
        {"s": "\\u0000"},  # the text backslash-u0000, not a NUL
        {"s": "\\\\u0000", "t": "x\\"},
        _nested(63),
        [[i, {"a": [i]}] for i in range(100)],  # many brackets, shallow
        {"emoji": "\U0001f600", "accents": "éàü"},
    ],
    ids=["escaped-lookalike", "backslashes", "deep-but-allowed", "wide", "non-ascii"],
)
def test_payloads_that_only_look_suspicious_are_stored_as_sent(payload) -> None:
    job = enqueue_job("taskforge.echo", payload).job
    assert job.payload == payload and Job.objects.get(id=job.id).payload == payload


def test_ordinary_payloads_are_not_walked_in_python(monkeypatch) -> None:
    """The walk only names a problem; plain payloads (and NUL look-alikes) skip it."""
    from jobs import services

    def walked(*args: object) -> None:
        raise AssertionError("walked a payload the encoder had accepted")

    monkeypatch.setattr(services, "_json_problem", walked)
    for payload in ({}, {"s": "\\u0000", "t": "\\\\u0000"}, _nested(63), {"é": ["\U0001f600"]}):
        assert enqueue_job("taskforge.echo", payload).job.payload == payload


def test_the_payload_limit_counts_utf8_bytes_as_stored(settings) -> None:
    limit = settings.TASKFORGE.max_payload_bytes
    fits = {"d": "é" * ((limit - 8) // 2)}  # 2 bytes each in UTF-8, 6 as a \u escape
    assert enqueue_job("taskforge.echo", fits).created
    with pytest.raises(PayloadTooLarge) as caught:
        enqueue_job("taskforge.echo", {"d": "é" * (limit // 2)})
    assert caught.value.details == {"size": limit + 8, "limit": limit}


@pytest.mark.parametrize("signal_name", ["pre_init", "post_init"])
def test_returned_jobs_are_what_the_orm_reads_back(signal_name) -> None:
    from django.db.models import signals

    results = enqueue_jobs([JobSpec("taskforge.echo", {"n": n}, priority=n) for n in range(3)])
    calls: list[dict] = []

    def record(sender, **kwargs) -> None:
        calls.append(kwargs)

    signal = getattr(signals, signal_name)
    signal.connect(record, sender=Job)
    try:  # with a receiver, each returned job goes through Model.__init__ and its signals
        observed = enqueue_job("taskforge.echo", {"n": 3}).job
    finally:
        signal.disconnect(record, sender=Job)
    assert len(calls) == 1
    if signal_name == "post_init":
        assert calls[0]["instance"] is observed
    for job in [r.job for r in results] + [observed]:
        stored = Job.objects.get(id=job.id)
        assert {f.attname: getattr(job, f.attname) for f in Job._meta.concrete_fields} == {
            f.attname: getattr(stored, f.attname) for f in Job._meta.concrete_fields
        }
        assert (job._state.adding, job._state.db) == (False, "default")
    job = results[0].job
    job.priority = 42
    job.save(update_fields=["priority"])  # an UPDATE of the stored row, as for any fetched model
    assert Job.objects.get(id=job.id).priority == 42


def test_a_traceparent_postgres_cannot_store_is_a_validation_error() -> None:
    for bad in ("00-\x00", "x" * 65, 7):
        with pytest.raises(JobValidationError) as caught:
            enqueue_job("taskforge.noop", traceparent=bad)
        assert "traceparent" in caught.value.details
    assert Job.objects.count() == 0


def test_state_checks_take_only_job_states() -> None:
    from jobs import sql

    assert sql._state_in("QUEUED", table="j") == "CASE WHEN j.state IN ('QUEUED') THEN true END"
    with pytest.raises(ValueError, match="is not a valid JobState"):
        sql._state_in("QUEUED') OR (true")  # the names go into the SQL text
