"""The named hot-path SQL. Everything else uses the ORM.

Each statement is one round trip and one transaction (autocommit) for a whole batch: arrays go
in through ``unnest``, so the statement text never changes with the batch size. Every
state change is guarded in the statement itself (``WHERE state = ... AND lease_token = ...``)
and writes its ``job_events`` rows in the same statement. Keep the event names in sync with
DESIGN.md §3 and the state table in jobs/states.py (the trigger refuses anything else).
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple

import psycopg
from django.db import OperationalError, connection, models
from django.db.models import signals
from django.db.models.base import ModelState

from jobs.states import ACTIVE_STATES, JobState

DEADLOCK_RETRIES = 3

# Columns the worker needs to run a job; keep in sync with workers.runtime.ClaimedJob.
_CLAIMED_COLUMNS = """id, queue, job_type, payload, attempt_count, max_attempts, initial_delay_ms,
    backoff, max_delay_ms, jitter, timeout_ms, lease_token, queued_at, started_at, traceparent"""

# Enough to put a job back in its Redis ready queue.
_READY_COLUMNS = "id, queue, priority, queued_at"

# -- enqueue_jobs --


class EnqueueRow(NamedTuple):
    """One job's parameters for ENQUEUE_ONE / ENQUEUE_JOBS, resolved and validated."""

    id: uuid.UUID
    queue: str
    job_type: str
    payload: str  # JSON text
    priority: int
    key: str | None
    max_attempts: int
    initial_delay: int
    backoff: float
    max_delay: int
    jitter: bool
    timeout: int | None
    run_at: datetime | None
    delay: int | None
    traceparent: str


# Each EnqueueRow field's (SQL type, column of the statement's `i(...)`).
_ENQUEUE_INPUT = {
    "id": ("uuid", "id"),
    "queue": ("text", "queue"),
    "job_type": ("text", "job_type"),
    "payload": ("text", "payload"),
    "priority": ("int", "priority"),
    "key": ("text", "idempotency_key"),
    "max_attempts": ("int", "max_attempts"),
    "initial_delay": ("int", "initial_delay_ms"),
    "backoff": ("float8", "backoff"),
    "max_delay": ("int", "max_delay_ms"),
    "jitter": ("bool", "jitter"),
    "timeout": ("int", "timeout_ms"),
    "run_at": ("timestamptz", "run_at_in"),
    "delay": ("bigint", "delay_ms"),
    "traceparent": ("text", "traceparent"),
}

# Inserts a batch of jobs plus their `created` events. A job is QUEUED when due now by the
# database clock (the one clock every process agrees on), else PENDING until next_run_at.
# A row whose (queue, idempotency_key) exists is skipped by the partial unique index
# jobs_idempotency_key_per_queue; the caller looks those up (concurrent inserts wait here).
_ENQUEUE = """
WITH input AS (
  SELECT i.*, coalesce(i.run_at_in, now() + i.delay_ms * interval '1 millisecond') AS due_at
  FROM {source} AS i({columns})
), inserted AS (
  INSERT INTO jobs (id, queue, job_type, payload, state, priority, idempotency_key, attempt_count,
                    max_attempts, initial_delay_ms, backoff, max_delay_ms, jitter, timeout_ms,
                    run_at, next_run_at, queued_at, cancel_requested, traceparent,
                    created_at, updated_at)
  SELECT id, queue, job_type, payload::jsonb,
         CASE WHEN due_at IS NULL OR due_at <= now() THEN 'QUEUED' ELSE 'PENDING' END,
         priority, idempotency_key, 0, max_attempts, initial_delay_ms, backoff, max_delay_ms,
         jitter, timeout_ms, due_at,
         CASE WHEN due_at > now() THEN due_at END,
         CASE WHEN due_at IS NULL OR due_at <= now() THEN now() END,
         false, traceparent, now(), now()
  FROM input
  ON CONFLICT (queue, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
  RETURNING *
), events AS (
  INSERT INTO job_events (job_id, type, at, attempt, details)
  SELECT id, 'created', now(), 0, jsonb_build_object('state', state) FROM inserted
)
SELECT * FROM inserted
"""
_ENQUEUE_COLUMNS = ", ".join(_ENQUEUE_INPUT[name][1] for name in EnqueueRow._fields)
# Arrays go in binary: psycopg's text dumper quotes every element in Python (twice the client
# CPU of the binary one for a 1,000-job batch).
ENQUEUE_JOBS = _ENQUEUE.format(
    source="unnest("
    + ", ".join(f"%({name})b::{_ENQUEUE_INPUT[name][0]}[]" for name in EnqueueRow._fields)
    + ")",
    columns=_ENQUEUE_COLUMNS,
)
# The same for one job, its parameters scalars: adapting fifteen one-element arrays cost more
# client CPU than the rest of a single enqueue's statement.
ENQUEUE_ONE = _ENQUEUE.format(
    source="(VALUES ("
    + ", ".join(f"%({name})s::{_ENQUEUE_INPUT[name][0]}" for name in EnqueueRow._fields)
    + "))",
    columns=_ENQUEUE_COLUMNS,
)


def enqueue_params(rows: Sequence[EnqueueRow]) -> tuple[str, dict[str, Any]]:
    """The statement and its parameters: scalars for one row, else one array per column."""
    if len(rows) == 1:
        return ENQUEUE_ONE, rows[0]._asdict()
    return ENQUEUE_JOBS, dict(zip(EnqueueRow._fields, map(list, zip(*rows, strict=True)), strict=True))


# -- existing_by_key --
# For enqueued rows skipped as idempotent repeats: the job holding each (queue, key), and
# whether it is the same job (jsonb equality, as stored). `n` is the input row's position.
EXISTING_BY_KEY = """
SELECT j.*, i.n, (j.job_type = i.job_type AND j.payload = i.payload::jsonb) AS same_job
FROM unnest(%(queues)s::text[], %(keys)s::text[], %(job_types)s::text[], %(payloads)s::text[])
       WITH ORDINALITY AS i(queue, key, job_type, payload, n)
JOIN jobs j ON j.queue = i.queue AND j.idempotency_key = i.key
"""


def _state_in(*states: str, table: str = "") -> str:
    """`state IN (states)`, for statements that look jobs up by id, in a form the planner cannot
    match to the partial indexes on state (jobs_queued_idx, jobs_active_idx).

    Right after a burst of enqueues, before autovacuum analyzes the table, the statistics say few
    jobs are QUEUED or RUNNING; with a plain `state = 'QUEUED'` the planner read every QUEUED
    job through the partial index and filtered them by id: a claim of 84 ids behind 20,000
    QUEUED jobs took 10 - 15 ms instead of 2 - 3 through the primary key, settles and heartbeats
    likewise over every RUNNING job, so their cost grew with the backlog. The planner does not
    look inside a CASE.
    """
    names = [JobState(state).value for state in states]  # ValueError for others: they go into SQL
    column = f"{table}.state" if table else "state"
    return f"CASE WHEN {column} IN ({', '.join(f"'{name}'" for name in names)}) THEN true END"


# -- claim_jobs --
# Claims the popped ids that are still QUEUED, under one lease token per batch (fencing pairs
# it with the job id, so it is unique per attempt). No SKIP LOCKED needed: a concurrent claimer of
# the same id blocks on the row, then re-checks `state = 'QUEUED'` and skips it, so no job is
# ever claimed twice. Attempts are counted here, so a job that crashes its worker every time
# still reaches the DLQ. Index: the primary key (see _state_in).
CLAIM_JOBS = f"""
WITH claimed AS (
  UPDATE jobs SET state = 'RUNNING', attempt_count = attempt_count + 1,
         lease_owner = %(worker)s, lease_token = %(token)s::uuid,
         lease_expires_at = now() + %(lease_ms)s * interval '1 millisecond',
         started_at = now(), updated_at = now()
  WHERE id = ANY(%(ids)s::uuid[]) AND {_state_in("QUEUED")}
  RETURNING {_CLAIMED_COLUMNS}
), events AS (
  INSERT INTO job_events (job_id, type, at, attempt, worker_id, details)
  SELECT id, 'claimed', now(), attempt_count, %(worker)s, '{{}}'::jsonb FROM claimed
)
SELECT {_CLAIMED_COLUMNS} FROM claimed
"""

# -- adopt_claimed --
# After a claim whose reply was lost (the connection dropped after the commit), the worker
# retries with the same token and first takes back what that claim already got.
ADOPT_CLAIMED = f"""
SELECT {_CLAIMED_COLUMNS} FROM jobs
WHERE id = ANY(%(ids)s::uuid[]) AND {_state_in("RUNNING")} AND lease_token = %(token)s::uuid
"""

# -- renew_leases --
# One statement renews every lease a worker holds, fenced by token. Ids missing from the
# result were lost (expired and requeued, dead-lettered, canceled); `cancel_requested` tells
# the worker to stop a handler. Heartbeats write no events (they would flood the table).
RENEW_LEASES = f"""
UPDATE jobs j SET lease_expires_at = now() + %(lease_ms)s * interval '1 millisecond'
FROM unnest(%(ids)s::uuid[], %(tokens)s::uuid[]) AS h(id, token)
WHERE j.id = h.id AND {_state_in("RUNNING", table="j")} AND j.lease_token = h.token
RETURNING j.id, j.cancel_requested
"""

# Shared tail: a dead_letters row for every job that reached DLQ in `moved`.
_DEAD_LETTER_UPSERT = """
  INSERT INTO dead_letters (job_id, queue, job_type, payload, reason, last_error, attempts,
                            failed_at, created_at, updated_at)
  SELECT id, queue, job_type, payload, reason, last_error, attempt_count, now(), now(), now()
  FROM moved WHERE state = 'DLQ'
  ON CONFLICT (job_id) DO UPDATE SET reason = EXCLUDED.reason, last_error = EXCLUDED.last_error,
    attempts = EXCLUDED.attempts, failed_at = EXCLUDED.failed_at, updated_at = EXCLUDED.updated_at
"""

# The event that records where a job went after a failed attempt or a lost lease.
_OUTCOME_EVENT = """CASE state WHEN 'SUCCEEDED' THEN 'succeeded' WHEN 'RETRYING' THEN 'retry_scheduled'
    WHEN 'DLQ' THEN 'dead_lettered' WHEN 'CANCELED' THEN 'canceled' ELSE 'queued' END"""

# -- settle_jobs --
# Settles a batch of finished attempts (success, retry, dead letter) in one statement. Fenced:
# only rows still RUNNING under the same lease token move; a stale settle matches nothing and
# is dropped by the caller. A job whose cancel was requested ends CANCELED, never SUCCEEDED.
SETTLE_JOBS = f"""
WITH outcome AS (
  SELECT * FROM unnest(%(ids)s::uuid[], %(tokens)s::uuid[], %(states)s::text[],
                       %(results)s::text[], %(errors)s::text[], %(tracebacks)s::text[],
                       %(delays)s::bigint[], %(reasons)s::text[], %(exception_classes)s::text[])
    AS o(id, token, state, result, error, traceback, delay_ms, reason, exception_class)
), moved AS (
  UPDATE jobs j SET
    state = CASE WHEN j.cancel_requested THEN 'CANCELED' ELSE o.state END,
    result = CASE WHEN o.state = 'SUCCEEDED' THEN o.result::jsonb ELSE j.result END,
    last_error = coalesce(o.error, j.last_error),
    next_run_at = CASE WHEN o.state = 'RETRYING' AND NOT j.cancel_requested
                       THEN now() + o.delay_ms * interval '1 millisecond' END,
    finished_at = CASE WHEN o.state = 'RETRYING' AND NOT j.cancel_requested THEN NULL ELSE now() END,
    lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL, updated_at = now()
  FROM outcome o
  WHERE j.id = o.id AND {_state_in("RUNNING", table="j")} AND j.lease_token = o.token
  RETURNING j.id, j.state, j.queue, j.job_type, j.payload, j.attempt_count, j.last_error,
            j.next_run_at, o.error, o.traceback, o.reason, o.exception_class
), events AS (
  INSERT INTO job_events (job_id, type, at, attempt, worker_id, details)
  SELECT id, 'failed', now(), attempt_count, %(worker)s,
         jsonb_build_object('error', error, 'traceback', traceback, 'exceptionClass', exception_class)
  FROM moved WHERE error IS NOT NULL
  UNION ALL
  SELECT id, {_OUTCOME_EVENT}, now(), attempt_count, %(worker)s,
         jsonb_strip_nulls(jsonb_build_object('nextRunAt', next_run_at, 'reason',
                           CASE WHEN state = 'DLQ' THEN reason END))
  FROM moved
), dead AS ({_DEAD_LETTER_UPSERT})
SELECT id, state FROM moved
"""

# -- release_jobs --
# A worker hands jobs back without counting the attempt: unfinished ones at a graceful
# shutdown, unstarted ones it claimed ahead while its slots were stuck. They keep queued_at,
# so they keep their place in the ready queue instead of going behind the whole backlog.
RELEASE_JOBS = f"""
WITH moved AS (
  UPDATE jobs j SET
    state = CASE WHEN j.cancel_requested THEN 'CANCELED' ELSE 'QUEUED' END,
    attempt_count = greatest(j.attempt_count - 1, 0),
    finished_at = CASE WHEN j.cancel_requested THEN now() END,
    lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL, updated_at = now()
  FROM unnest(%(ids)s::uuid[], %(tokens)s::uuid[]) AS r(id, token)
  WHERE j.id = r.id AND {_state_in("RUNNING", table="j")} AND j.lease_token = r.token
  RETURNING j.id, j.state, j.queue, j.priority, j.queued_at, j.attempt_count
), events AS (
  INSERT INTO job_events (job_id, type, at, attempt, worker_id, details)
  SELECT id, CASE state WHEN 'CANCELED' THEN 'canceled' ELSE 'released' END, now(),
         attempt_count, %(worker)s, '{{}}'::jsonb
  FROM moved
)
SELECT {_READY_COLUMNS}, state FROM moved
"""

# -- promote_due_jobs --
# PENDING/RETRYING jobs whose time has come become QUEUED. SKIP LOCKED lets several schedulers
# promote at once without waiting on or double-promoting each other. Index: jobs_due_idx.
PROMOTE_DUE_JOBS = f"""
WITH due AS (
  SELECT id FROM jobs
  WHERE state IN ('PENDING', 'RETRYING') AND next_run_at <= now()
  ORDER BY next_run_at LIMIT %(limit)s
  FOR NO KEY UPDATE SKIP LOCKED
), moved AS (
  UPDATE jobs j SET state = 'QUEUED', queued_at = now(), updated_at = now()
  FROM due WHERE j.id = due.id AND {_state_in("PENDING", "RETRYING", table="j")}
  RETURNING j.id, j.queue, j.priority, j.queued_at, j.attempt_count, j.traceparent, j.job_type
), events AS (
  INSERT INTO job_events (job_id, type, at, attempt, details)
  SELECT id, 'queued', now(), attempt_count, '{{}}'::jsonb FROM moved
)
SELECT {_READY_COLUMNS}, traceparent, job_type, attempt_count FROM moved
"""

# -- expire_leases --
# RUNNING jobs whose lease ran out (the worker died or hung) count a failed attempt: back to
# QUEUED, or DLQ when attempts are exhausted, or CANCELED when a cancel was pending. The
# guard re-checks the expiry under the row lock, so a lease renewed meanwhile is left alone.
# Index: jobs_lease_expiry_idx.
EXPIRE_LEASES = f"""
WITH expired AS (
  SELECT id, lease_owner FROM jobs
  WHERE state = 'RUNNING' AND lease_expires_at < now()
  ORDER BY lease_expires_at LIMIT %(limit)s
  FOR NO KEY UPDATE SKIP LOCKED
), moved AS (
  UPDATE jobs j SET
    state = CASE WHEN j.cancel_requested THEN 'CANCELED'
                 WHEN j.attempt_count >= j.max_attempts THEN 'DLQ' ELSE 'QUEUED' END,
    queued_at = now(),
    finished_at = CASE WHEN j.cancel_requested OR j.attempt_count >= j.max_attempts
                       THEN now() END,
    last_error = 'lease expired',
    lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL, updated_at = now()
  FROM expired e
  WHERE j.id = e.id  -- the re-check in a CASE, as in _state_in (lease_expires_at too: an index)
    AND CASE WHEN j.state = 'RUNNING' AND j.lease_expires_at < now() THEN true END
  RETURNING j.id, j.state, j.queue, j.priority, j.queued_at, j.job_type, j.payload,
            j.attempt_count, j.last_error, e.lease_owner, 'attempts exhausted'::text AS reason
), events AS (
  INSERT INTO job_events (job_id, type, at, attempt, worker_id, details)
  SELECT id, 'lease_expired', now(), attempt_count, lease_owner, '{{}}'::jsonb FROM moved
  UNION ALL
  SELECT id, {_OUTCOME_EVENT}, now(), attempt_count, NULL,
         jsonb_strip_nulls(jsonb_build_object('reason', CASE WHEN state = 'DLQ' THEN reason END))
  FROM moved
), dead AS ({_DEAD_LETTER_UPSERT})
SELECT {_READY_COLUMNS}, state FROM moved
"""

# Operator actions below take a batch of ids and the states each action may start from. The
# `prev` CTE is the guard: it locks the rows (FOR NO KEY UPDATE, in id order, so two batches
# cannot deadlock) and Postgres re-checks its WHERE on the latest row version after waiting for
# a lock, so of two racing writers the loser matches nothing. The UPDATE then joins on id only:
# it must not re-test the state, because it reads rows as of the statement's start and would
# miss a job that, say, a worker claimed while we waited. Events carry who and why, and each
# moved job gets an audit_entries row in the same statement (the ops UI's audit trail).


def _audit(action: str, reason: str) -> str:
    """The CTE recording one audit entry per row of `moved` (SQL expressions for action and reason)."""
    return f"""audit AS (
  INSERT INTO audit_entries (at, actor, action, target_type, target_id, reason, details)
  SELECT now(), %(actor)s::text, {action}, 'job', id::text, {reason},
         jsonb_build_object('from', from_state, 'queue', queue)
  FROM moved
)"""


# -- requeue_jobs --
# retry / replay: RETRYING runs now with its attempts kept; DLQ and CANCELED start afresh
# (attempts, error, cancel flag reset) and leave the DLQ. %(event)s is 'retried' or 'replayed'.
REQUEUE_JOBS = f"""
WITH prev AS (
  SELECT id, state FROM jobs WHERE id = ANY(%(ids)s::uuid[]) AND state = ANY(%(from_states)s::text[])
  ORDER BY id FOR NO KEY UPDATE
), moved AS (
  UPDATE jobs j SET state = 'QUEUED',
    attempt_count = CASE WHEN prev.state = 'RETRYING' THEN j.attempt_count ELSE 0 END,
    last_error = CASE WHEN prev.state = 'RETRYING' THEN j.last_error END,
    cancel_requested = false, queued_at = now(), finished_at = NULL, updated_at = now()
  FROM prev WHERE j.id = prev.id
  RETURNING j.id, j.queue, j.priority, j.queued_at, j.attempt_count, prev.state AS from_state
), dead AS (
  DELETE FROM dead_letters WHERE job_id IN (SELECT id FROM moved)
), events AS (
  INSERT INTO job_events (job_id, type, at, attempt, details)
  SELECT id, %(event)s, now(), attempt_count, jsonb_strip_nulls(jsonb_build_object(
    'from', from_state, 'actor', %(actor)s::text, 'reason', %(reason)s::text))
  FROM moved
), {_audit("CASE %(event)s WHEN 'replayed' THEN 'replay' ELSE 'retry' END", "%(reason)s::text")}
SELECT {_READY_COLUMNS} FROM moved
"""

# -- cancel_jobs --
# PENDING/QUEUED/RETRYING end CANCELED at once; a RUNNING job gets cancel_requested (its
# worker sees it at the next heartbeat; the settle or the lease expiry then ends it CANCELED).
CANCEL_JOBS = f"""
WITH prev AS (
  SELECT id, state FROM jobs
  WHERE id = ANY(%(ids)s::uuid[]) AND {_state_in(*sorted(ACTIVE_STATES))}
    AND NOT cancel_requested
  ORDER BY id FOR NO KEY UPDATE
), moved AS (
  UPDATE jobs j SET cancel_requested = true,
    state = CASE WHEN prev.state = 'RUNNING' THEN 'RUNNING' ELSE 'CANCELED' END,
    finished_at = CASE WHEN prev.state = 'RUNNING' THEN NULL ELSE now() END, updated_at = now()
  FROM prev WHERE j.id = prev.id
  RETURNING j.id, j.state, j.queue, j.attempt_count, prev.state AS from_state
), events AS (
  INSERT INTO job_events (job_id, type, at, attempt, details)
  SELECT id, CASE state WHEN 'CANCELED' THEN 'canceled' ELSE 'cancel_requested' END, now(),
         attempt_count, jsonb_strip_nulls(jsonb_build_object(
           'from', from_state, 'actor', %(actor)s::text, 'reason', %(reason)s::text))
  FROM moved
), {_audit("'cancel'", "%(reason)s::text")}
SELECT id, state, queue FROM moved
"""

# -- dead_letter_jobs --
# An operator moves non-terminal jobs to the DLQ. Clearing the lease fences a RUNNING job's
# worker off: its settle and heartbeat no longer match.
DEAD_LETTER_JOBS = f"""
WITH prev AS (
  SELECT id, state FROM jobs
  WHERE id = ANY(%(ids)s::uuid[]) AND {_state_in(*sorted(ACTIVE_STATES))}
  ORDER BY id FOR NO KEY UPDATE
), moved AS (
  UPDATE jobs j SET state = 'DLQ', finished_at = now(), updated_at = now(),
    lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL
  FROM prev WHERE j.id = prev.id
  RETURNING j.id, j.state, j.queue, j.job_type, j.payload, j.attempt_count, j.last_error,
            %(reason)s::text AS reason, prev.state AS from_state
), events AS (
  INSERT INTO job_events (job_id, type, at, attempt, details)
  SELECT id, 'dead_lettered', now(), attempt_count, jsonb_strip_nulls(jsonb_build_object(
    'from', from_state, 'actor', %(actor)s::text, 'reason', reason))
  FROM moved
), {_audit("'dead-letter'", "reason")}, dead AS ({_DEAD_LETTER_UPSERT})
SELECT id, state, queue FROM moved
"""

# -- oldest_queued --
# The oldest QUEUED job of each given queue: one index seek per queue on jobs_active_idx.
OLDEST_QUEUED = """
SELECT q.queue, (SELECT min(queued_at) FROM jobs j WHERE j.state = 'QUEUED' AND j.queue = q.queue)
       AS oldest
FROM unnest(%(queues)s::text[]) AS q(queue)
"""

# -- queued_jobs_by_id --
# Which of these ids are still QUEUED (stale in-flight ids go back to their ready queue).
QUEUED_JOBS_BY_ID = f"""
SELECT {_READY_COLUMNS} FROM jobs WHERE id = ANY(%(ids)s::uuid[]) AND {_state_in("QUEUED")}
"""

# -- queued_jobs_page --
# Keyset page over QUEUED jobs older than a grace period, for re-publishing after a Redis flush
# and for the slow sweep that finds jobs whose publish was lost. Index: jobs_queued_idx.
QUEUED_JOBS_PAGE = f"""
SELECT {_READY_COLUMNS} FROM jobs
WHERE state = 'QUEUED' AND queued_at < now() - %(grace_ms)s * interval '1 millisecond'
  AND (queued_at, id) > (%(after_at)s::timestamptz, %(after_id)s::uuid)
ORDER BY queued_at, id LIMIT %(limit)s
"""

# -- prune_finished_jobs --
# Retention: deletes SUCCEEDED and CANCELED jobs finished before the cutoff, with their events,
# a batch at a time. DLQ jobs stay until an operator replays or deletes them. job_events has
# no FK (see jobs.models.JobEvent), so both deletes go in one statement. Index: jobs_finished_idx.
PRUNE_FINISHED_JOBS = """
WITH doomed AS (
  SELECT id FROM jobs
  WHERE state IN ('SUCCEEDED', 'CANCELED') AND finished_at < now() - %(days)s * interval '1 day'
  ORDER BY finished_at LIMIT %(limit)s
  FOR UPDATE SKIP LOCKED
), events AS (
  DELETE FROM job_events WHERE job_id IN (SELECT id FROM doomed)
)
DELETE FROM jobs WHERE id IN (SELECT id FROM doomed) RETURNING id
"""


@functools.cache
def _model_fields(model: type[models.Model]) -> tuple[list[str], list[str]]:
    fields = model._meta.concrete_fields
    return [f.attname for f in fields], [f.column for f in fields]


def models_from_rows[M: models.Model](model: type[M], rows: Iterable[Mapping[str, Any]]) -> list[M]:
    """Model instances from fetched rows holding all their columns (e.g. RETURNING *).

    What Model.from_db builds, at a third of its cost (a 1,000-job batch builds a thousand):
    Model.__init__ sets each field through setattr and sends pre_init/post_init, which only
    matter when something listens to them or the model overrides __init__ or from_db; then
    from_db is used. Values are picked by column name, so the table's column order never
    matters.
    """
    names, columns = _model_fields(model)
    alias = connection.alias  # a thread-local lookup: once per batch
    if (
        signals.pre_init.has_listeners(model)
        or signals.post_init.has_listeners(model)
        or model.__init__ is not models.Model.__init__
        or model.from_db.__func__ is not models.Model.from_db.__func__
    ):
        return [model.from_db(alias, names, [row[column] for column in columns]) for row in rows]
    instances = []
    for row in rows:
        instance = model.__new__(model)
        instance.__dict__.update(zip(names, [row[column] for column in columns], strict=True))
        state = instance._state = ModelState()
        state.adding, state.db = False, alias
        instances.append(instance)
    return instances


def fetch(query: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Runs one named statement on this thread's connection and returns rows as dicts.

    A plain psycopg cursor binds parameters server-side, so Postgres prepares each named
    statement once per connection (prepare_threshold in settings) instead of planning it on
    every call. Results come in binary: parsing timestamps and uuids from text was the
    largest client cost of a batch enqueue. Errors are wrapped into Django's, and it joins any
    atomic() block as usual.
    Outside an atomic() block a statement that lost a deadlock is simply run again: it was
    rolled back whole, and every statement here is safe to repeat.
    """
    retries = 0
    while True:
        # As Django's own cursors do: once per request, replace a connection Postgres dropped.
        connection.close_if_health_check_failed()
        connection.ensure_connection()
        connection.validate_no_broken_transaction()
        try:
            with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
                cursor.execute(query, params, binary=True)
                # Names straight from the result: cursor.description builds an object per column.
                result = cursor.pgresult
                if result is None or not result.nfields:
                    return []
                names = [result.fname(i).decode() for i in range(result.nfields)]
                return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        except OperationalError as exc:
            deadlock = isinstance(exc.__cause__, psycopg.errors.DeadlockDetected)
            if not deadlock or connection.in_atomic_block or retries == DEADLOCK_RETRIES:
                raise
            retries += 1
