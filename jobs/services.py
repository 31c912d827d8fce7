"""Every write to a job. Views, admin actions, runworker and runscheduler all call these.

Each transition is one guarded statement (jobs/sql.py) that writes its events in the same
transaction; Redis is told only after the commit.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import traceback
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import connection, transaction

from jobs import sql
from jobs.errors import (
    DependencyNotReady,
    IdempotencyKeyReused,
    InvalidStateTransition,
    JobNotFound,
    JobValidationError,
    PayloadTooLarge,
    UnknownJobType,
)
from jobs.models import LIMITS, MAX_QUEUE_CONCURRENCY, MAX_RATE_PER_SEC, AuditEntry, Job, QueueSettings
from jobs.retry import RetryPolicy, decide_retry
from jobs.states import JobState
from taskforge_site import tracing
from taskforge_site.env import QUEUE_NAME_RE
from workers import broker
from workers.registry import get_handler

logger = logging.getLogger("taskforge.services")

MAX_JSON_DEPTH = 64
MAX_ERROR_CHARS = 2_000
MAX_TRACEBACK_CHARS = 8_000


@dataclass(frozen=True)
class JobSpec:
    """One job to enqueue. None means: the handler's default, else the settings' default."""

    job_type: str
    payload: Any = field(default_factory=dict)
    queue: str | None = None
    priority: int = 0
    idempotency_key: str | None = None
    run_at: datetime | None = None
    delay_ms: int | None = None
    max_attempts: int | None = None
    initial_delay_ms: int | None = None
    backoff: float | None = None
    max_delay_ms: int | None = None
    jitter: bool | None = None
    timeout_ms: int | None = None
    traceparent: str = ""


@dataclass(frozen=True)
class EnqueueResult:
    """The job, and whether this call created it (False: an idempotent repeat)."""

    job: Job
    created: bool


def _json_problem(value: Any, depth: int = 0) -> str | None:
    """Why Postgres' jsonb would refuse this value, if it would."""
    if depth >= MAX_JSON_DEPTH:
        return f"nested deeper than {MAX_JSON_DEPTH} levels"
    if isinstance(value, str):
        if "\x00" in value:
            return "contains a NUL character"
        try:
            value.encode()
        except UnicodeEncodeError:
            return "contains a lone surrogate"
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            problem = _json_problem(key, depth + 1) or _json_problem(item, depth + 1)
            if problem:
                return problem
    elif isinstance(value, list | tuple):  # the encoder writes a tuple as a list
        for item in value:
            problem = _json_problem(item, depth + 1)
            if problem:
                return problem
    return None


# One encoder for every dump: json.dumps builds a new one per call when given options.
_JSON = json.JSONEncoder(allow_nan=False, ensure_ascii=False, separators=(",", ":"))
# A JSON escape of NUL (an even run of backslashes before it escapes only backslashes).
_NUL_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


def dump_json(value: Any, what: str, limit: int) -> str:
    """Serialises a payload or result for jsonb, refusing what Postgres or the limit would.

    The limit counts UTF-8 bytes, as stored. json.dumps (C) runs first; only a value that it
    refuses, whose text holds an escaped NUL or enough brackets to nest too deep is walked
    in Python to name the problem (the walk cost more than the dump for every enqueue).
    """
    try:
        text = _JSON.encode(value)
        size = len(text.encode())  # UnicodeEncodeError: a lone surrogate
        error = None
    except (TypeError, ValueError, RecursionError) as exc:
        error = exc
    if error or _NUL_ESCAPE.search(text) or text.count("[") + text.count("{") >= MAX_JSON_DEPTH:
        problem = _json_problem(value) or (error and f"is not JSON ({error})")
        if problem:
            raise JobValidationError(f"The {what} {problem}.", {what: [problem]})
    if size > limit:
        raise PayloadTooLarge(
            f"The {what} is {size} bytes; the limit is {limit}.", {"size": size, "limit": limit}
        )
    return text


def _check_range(name: str, value: Any, problems: dict[str, str]) -> None:
    if value is None:
        return
    low, high = LIMITS[name]
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if not is_number or (isinstance(low, int) and not isinstance(value, int)):
        problems[name] = "has the wrong type"
    elif not low <= value <= high:
        problems[name] = f"must be between {low:g} and {high:g}"


# JobSpec's retry and timeout options: the spec's value, else the handler's, else the default.
_OPTIONS = ("max_attempts", "initial_delay_ms", "backoff", "max_delay_ms", "jitter", "timeout_ms")


class _Defaults:
    """What a batch's specs fall back to, looked up once per batch and job type."""

    def __init__(self) -> None:
        self.cfg = settings.TASKFORGE
        self.policy = RetryPolicy(max_attempts=self.cfg.default_max_attempts)
        self.traceparent = tracing.current_traceparent()  # e.g. the API request's: workers continue it
        self._by_type: dict[str, tuple[str, tuple[Any, ...]] | None] = {}

    def for_type(self, job_type: Any) -> tuple[str, tuple[Any, ...]] | None:
        """(default queue, default options in _OPTIONS order), or None for an unknown type."""
        if not isinstance(job_type, str):
            return None
        if job_type not in self._by_type:
            handler = get_handler(job_type)
            self._by_type[job_type] = handler and (
                handler.queue or self.cfg.queue_name,
                tuple(
                    value
                    if (value := getattr(handler, name)) is not None
                    else getattr(self.policy, name, None)
                    for name in _OPTIONS
                ),
            )
        return self._by_type[job_type]


def _resolve(spec: JobSpec, defaults: _Defaults) -> sql.EnqueueRow:
    """Validates one spec and fills its defaults; raises the first kind of problem found."""
    found = defaults.for_type(spec.job_type)
    if found is None:
        raise UnknownJobType(f"Unknown job type {spec.job_type!r}.", {"jobType": spec.job_type})
    default_queue, default_options = found
    problems: dict[str, str] = {}
    for name in LIMITS:
        _check_range(name, getattr(spec, name), problems)
    queue = spec.queue or default_queue
    if not isinstance(queue, str) or not QUEUE_NAME_RE.match(queue):
        problems["queue"] = "must be 1-100 letters, digits or _.:-"
    key = spec.idempotency_key
    if key is not None and (not isinstance(key, str) or not 1 <= len(key) <= 255 or "\x00" in key):
        problems["idempotency_key"] = "must be 1-255 characters"
    if spec.run_at is not None and spec.delay_ms is not None:
        problems["run_at"] = "give run_at or delay, not both"
    if spec.run_at is not None and (not isinstance(spec.run_at, datetime) or spec.run_at.tzinfo is None):
        problems["run_at"] = "must be a timezone-aware datetime"
    if spec.jitter is not None and not isinstance(spec.jitter, bool):
        problems["jitter"] = "must be a boolean"
    if not isinstance(spec.traceparent, str) or len(spec.traceparent) > 64 or "\x00" in spec.traceparent:
        problems["traceparent"] = "must be text of at most 64 characters"
    if problems:
        raise JobValidationError("Invalid job.", problems)
    max_attempts, initial_delay, backoff, max_delay, jitter, timeout = (
        value if (value := getattr(spec, name)) is not None else default
        for name, default in zip(_OPTIONS, default_options, strict=True)
    )
    return sql.EnqueueRow(
        id=uuid.uuid4(),
        queue=queue,
        job_type=spec.job_type,
        payload=dump_json(spec.payload, "payload", defaults.cfg.max_payload_bytes),
        priority=spec.priority,
        key=key,
        max_attempts=max_attempts,
        initial_delay=initial_delay,
        backoff=float(backoff),
        max_delay=max_delay,
        jitter=jitter,
        timeout=timeout,
        run_at=spec.run_at,
        delay=spec.delay_ms,
        traceparent=spec.traceparent or defaults.traceparent,
    )


def enqueue_jobs(specs: Sequence[JobSpec]) -> list[EnqueueResult]:
    """Enqueues a batch atomically (all or nothing) in one INSERT; results in input order.

    Inside the caller's transaction.atomic() the jobs commit with the caller's writes, and
    reach Redis only after that commit (never for a rolled-back transaction).
    """
    defaults = _Defaults()
    rows = []
    for index, spec in enumerate(specs):
        try:
            rows.append(_resolve(spec, defaults))
        except (JobValidationError, UnknownJobType, PayloadTooLarge) as exc:
            if len(specs) == 1:
                raise
            raise type(exc)(f"Job {index}: {exc.message}", {"index": index, **exc.details}) from exc
    if not rows:
        return []
    # One job outside any atomic block is one autocommit statement (a skipped duplicate wrote
    # nothing, so there is nothing to roll back); a batch must be all or nothing.
    single = len(rows) == 1 and not connection.in_atomic_block
    with contextlib.nullcontext() if single else transaction.atomic():
        inserted = {job.id: job for job in sql.models_from_rows(Job, sql.fetch(*sql.enqueue_params(rows)))}
        existing = _existing_for_skipped(rows, inserted)
        results = []
        for index, row in enumerate(rows):
            if row.id in inserted:
                results.append(EnqueueResult(inserted[row.id], created=True))
                continue
            if index not in existing:  # pruned between our INSERT and this lookup
                raise DependencyNotReady("The idempotency key was released meanwhile; retry.")
            same, job = existing[index]
            if not same:
                details = {"jobId": str(job.id), "idempotencyKey": row.key}
                raise IdempotencyKeyReused(
                    "This idempotency key was used for a different job.",
                    {"index": index, **details} if len(rows) > 1 else details,
                )
            results.append(EnqueueResult(job, created=False))
        ready = [
            broker.ReadyJob(job.id, job.queue, job.priority, job.queued_at)
            for job in inserted.values()
            if job.state == JobState.QUEUED
        ]
        if ready:
            transaction.on_commit(lambda: broker.publish_quietly(ready))
    return results


def _existing_for_skipped(
    rows: list[sql.EnqueueRow], inserted: Mapping[uuid.UUID, Job]
) -> dict[int, tuple[bool, Job]]:
    """For each row the INSERT skipped: the job holding its key, and whether it is the same job.

    Postgres compares the payloads as jsonb, as it stored them (1e23 and its integer are one).
    """
    skipped = [(index, r) for index, r in enumerate(rows) if r.id not in inserted]
    if not skipped:
        return {}
    found = sql.fetch(
        sql.EXISTING_BY_KEY,
        {
            "queues": [r.queue for _, r in skipped],
            "keys": [r.key for _, r in skipped],
            "job_types": [r.job_type for _, r in skipped],
            "payloads": [r.payload for _, r in skipped],
        },
    )
    jobs = sql.models_from_rows(Job, found)
    return {skipped[row["n"] - 1][0]: (row["same_job"], job) for row, job in zip(found, jobs, strict=True)}


def enqueue_job(job_type: str, payload: Any = None, **options: Any) -> EnqueueResult:
    """Enqueues one job: ``enqueue_job("email.send", {"to": ...}, queue="mail", delay_ms=500)``.

    Options are JobSpec's fields. Transactional with the caller's atomic() block, like
    enqueue_jobs.
    """
    spec = JobSpec(job_type=job_type, payload={} if payload is None else payload, **options)
    return enqueue_jobs([spec])[0]


@dataclass(frozen=True)
class ClaimedJob:
    """A job this worker holds the lease on (fenced by `lease_token`)."""

    id: uuid.UUID
    queue: str
    job_type: str
    payload: Any
    attempt: int
    policy: RetryPolicy
    timeout_ms: int | None
    lease_token: uuid.UUID
    queued_at: datetime
    started_at: datetime
    traceparent: str

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> ClaimedJob:
        """From a claim's row (sql.fetch: jsonb arrives parsed, a JSON string as a str)."""
        return cls(
            id=row["id"],
            queue=row["queue"],
            job_type=row["job_type"],
            payload=row["payload"],
            attempt=row["attempt_count"],
            policy=RetryPolicy(
                row["max_attempts"],
                row["initial_delay_ms"],
                row["backoff"],
                row["max_delay_ms"],
                row["jitter"],
            ),
            timeout_ms=row["timeout_ms"],
            lease_token=row["lease_token"],
            queued_at=row["queued_at"],
            started_at=row["started_at"],
            traceparent=row["traceparent"],
        )


def claim_jobs(
    *,
    worker_id: str,
    ids: Sequence[uuid.UUID],
    lease_seconds: float,
    token: uuid.UUID | None = None,
    retrying: bool = False,
) -> list[ClaimedJob]:
    """QUEUED -> RUNNING for the ids still claimable, in one statement; others are dropped.

    `retrying` with the token of a claim that failed in flight first takes back what that claim
    committed, so a lost reply costs no attempt and strands no job.
    """
    if not ids:
        return []
    token = token or uuid.uuid4()
    adopted = []
    if retrying:
        adopted = [
            ClaimedJob.from_row(r) for r in sql.fetch(sql.ADOPT_CLAIMED, {"ids": list(ids), "token": token})
        ]
        taken = {job.id for job in adopted}
        ids = [i for i in ids if i not in taken]
    rows = sql.fetch(
        sql.CLAIM_JOBS,
        {"worker": worker_id, "ids": sorted(ids), "token": token, "lease_ms": int(lease_seconds * 1000)},
    )
    return adopted + [ClaimedJob.from_row(row) for row in rows]


def renew_leases(*, held: Mapping[uuid.UUID, uuid.UUID], lease_seconds: float) -> dict[uuid.UUID, bool]:
    """The heartbeat: renews every held lease (id -> token) at once.

    Returns the ids still held, each with its cancel_requested flag; the rest were lost.
    """
    if not held:
        return {}
    pairs = sorted(held.items())  # one lock order for every statement: no deadlocks
    rows = sql.fetch(
        sql.RENEW_LEASES,
        {
            "ids": [i for i, _ in pairs],
            "tokens": [t for _, t in pairs],
            "lease_ms": int(lease_seconds * 1000),
        },
    )
    return {row["id"]: row["cancel_requested"] for row in rows}


def storable_text(text: str) -> str:
    """Text Postgres can store: no NUL bytes, no lone surrogates (an error message may have both)."""
    return text.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")


def _safe_str(error: BaseException) -> str:
    try:
        return str(error)
    except Exception:  # an exception whose __str__ fails must still fail its job cleanly
        return f"<unprintable {type(error).__name__}>"


def _safe_traceback(error: BaseException) -> str:
    try:
        return "".join(traceback.format_exception(error))
    except Exception:
        return f"<traceback unavailable for {type(error).__name__}>"


@dataclass(frozen=True)
class Outcome:
    """How one attempt ended, ready to settle."""

    job_id: uuid.UUID
    lease_token: uuid.UUID
    state: str
    result: str | None = None
    error: str | None = None
    traceback: str | None = None
    delay_ms: int | None = None
    reason: str | None = None
    exception_class: str | None = None  # dotted path, for django.tasks' TaskResult.errors

    @classmethod
    def success(cls, job: ClaimedJob, result: Any) -> Outcome:
        """SUCCEEDED with its result; a result jsonb cannot hold is a permanent failure."""
        try:
            text = dump_json(result, "result", settings.TASKFORGE.max_payload_bytes)
        except (JobValidationError, PayloadTooLarge) as exc:
            return cls.failure(job, exc, permanent=True)
        return cls(job.id, job.lease_token, JobState.SUCCEEDED, result=text)

    @classmethod
    def failure(cls, job: ClaimedJob, error: BaseException, *, permanent: bool) -> Outcome:
        """RETRYING with backoff, or DLQ when permanent or out of attempts."""
        decision = decide_retry(job.policy, attempt=job.attempt, permanent=permanent)
        message = storable_text(f"{type(error).__name__}: {_safe_str(error)}")[:MAX_ERROR_CHARS]
        trace = storable_text(_safe_traceback(error))[-MAX_TRACEBACK_CHARS:]
        path = f"{type(error).__module__}.{type(error).__qualname__}"
        if decision.dead_letter:
            reason = "permanent error" if permanent else "attempts exhausted"
            return cls(
                job.id,
                job.lease_token,
                JobState.DLQ,
                error=message,
                traceback=trace,
                reason=reason,
                exception_class=path,
            )
        return cls(
            job.id,
            job.lease_token,
            JobState.RETRYING,
            error=message,
            traceback=trace,
            delay_ms=decision.delay_ms,
            exception_class=path,
        )

    @classmethod
    def cancelled(cls, job: ClaimedJob) -> Outcome:
        """The handler stopped because an operator cancelled the job."""
        return cls(job.id, job.lease_token, JobState.CANCELED)


def settle_jobs(*, worker_id: str, outcomes: Sequence[Outcome]) -> dict[uuid.UUID, str]:
    """Settles a batch of attempts in one fenced statement; returns id -> new state.

    Outcomes missing from the result were fenced off (the lease was lost): the caller drops
    them, because another attempt owns the job now.
    """
    if not outcomes:
        return {}
    outcomes = sorted(outcomes, key=lambda o: o.job_id)  # the lock order renew_leases uses
    rows = sql.fetch(
        sql.SETTLE_JOBS,
        {
            "worker": worker_id,
            "ids": [o.job_id for o in outcomes],
            "tokens": [o.lease_token for o in outcomes],
            "states": [str(o.state) for o in outcomes],
            "results": [o.result for o in outcomes],
            "errors": [o.error for o in outcomes],
            "tracebacks": [o.traceback for o in outcomes],
            "delays": [o.delay_ms for o in outcomes],
            "reasons": [o.reason for o in outcomes],
            "exception_classes": [o.exception_class for o in outcomes],
        },
    )
    return {row["id"]: row["state"] for row in rows}


def release_jobs(*, worker_id: str, held: Mapping[uuid.UUID, uuid.UUID]) -> int:
    """Unstarted or interrupted jobs a worker hands back (shutdown, prefetch given back):
    RUNNING -> QUEUED without counting the attempt; re-publishes them."""
    if not held:
        return 0
    rows = sql.fetch(
        sql.RELEASE_JOBS, {"worker": worker_id, "ids": list(held), "tokens": list(held.values())}
    )
    broker.publish_quietly([broker.ReadyJob.from_row(r) for r in rows if r["state"] == JobState.QUEUED])
    return len(rows)


# ---- operator actions --------------------------------------------------------------------
# Batched (the admin acts on many rows at once); each returns what it changed. The single-job
# forms below raise JobNotFound or InvalidStateTransition (naming the current state) instead.

RETRYABLE_STATES = (JobState.RETRYING, JobState.DLQ, JobState.CANCELED)


def requeue_jobs(
    *, ids: Sequence[uuid.UUID], from_states: Sequence[str], event: str, actor: str | None, reason: str | None
) -> list[uuid.UUID]:
    """Moves jobs in `from_states` back to QUEUED (retry/replay) and publishes them after commit."""
    if not ids:
        return []
    rows = sql.fetch(
        sql.REQUEUE_JOBS,
        {
            "ids": list(ids),
            "from_states": list(from_states),
            "event": event,
            "actor": actor,
            "reason": reason,
        },
    )
    ready = [broker.ReadyJob.from_row(r) for r in rows]
    transaction.on_commit(lambda: broker.publish_quietly(ready))
    return [r["id"] for r in rows]


def retry_jobs(
    *, ids: Sequence[uuid.UUID], actor: str | None = None, reason: str | None = None
) -> list[uuid.UUID]:
    """RETRYING (now, attempts kept), DLQ or CANCELED (afresh) -> QUEUED."""
    return requeue_jobs(ids=ids, from_states=RETRYABLE_STATES, event="retried", actor=actor, reason=reason)


def cancel_jobs(
    *, ids: Sequence[uuid.UUID], actor: str | None = None, reason: str | None = None
) -> dict[uuid.UUID, str]:
    """Cancels waiting jobs at once and asks running ones to stop; returns id -> new state."""
    if not ids:
        return {}
    rows = sql.fetch(sql.CANCEL_JOBS, {"ids": list(ids), "actor": actor, "reason": reason})
    canceled = [(r["queue"], r["id"]) for r in rows if r["state"] == JobState.CANCELED]
    transaction.on_commit(lambda: broker.remove_ready_quietly(canceled))
    return {r["id"]: r["state"] for r in rows}


def act_on_job(job_id: str | uuid.UUID, action: str, apply: Any) -> Job:
    """Runs a batched action on one job; 404 when there is no such job, 409 when it did not apply."""
    try:
        as_id = job_id if isinstance(job_id, uuid.UUID) else uuid.UUID(str(job_id))
    except ValueError:
        raise JobNotFound("No job with this id.") from None
    # The action and the read of its answer commit together: if Postgres fails in between, the
    # action rolls back and the client's 503 is true (a retry then succeeds, not a 409).
    with transaction.atomic():
        changed = apply([as_id])
        job = Job.objects.filter(id=as_id).first()
    if job is None:
        raise JobNotFound("No job with this id.")
    if as_id not in changed:
        raise InvalidStateTransition(
            f"Cannot {action} a job in state {job.state}.", {"state": job.state, "action": action}
        )
    return job


def retry_job(job_id: str | uuid.UUID, *, actor: str | None = None, reason: str | None = None) -> Job:
    """One job back to QUEUED; see retry_jobs."""
    return act_on_job(job_id, "retry", lambda ids: retry_jobs(ids=ids, actor=actor, reason=reason))


def cancel_job(job_id: str | uuid.UUID, *, actor: str | None = None, reason: str | None = None) -> Job:
    """Cancels one job; a second cancel of a job still running is a no-op, not an error."""

    def apply(ids: list[uuid.UUID]) -> Any:
        changed = cancel_jobs(ids=ids, actor=actor, reason=reason)
        if (
            not changed
            and Job.objects.filter(id__in=ids, state=JobState.RUNNING, cancel_requested=True).exists()
        ):
            return ids  # already asked to stop: idempotent
        return changed

    return act_on_job(job_id, "cancel", apply)


_UNCHANGED: Any = object()


def queue_limits_spec(row: QueueSettings) -> str | None:
    """How Redis' limits hash spells a queue's limits ("rate|concurrency"), or None for none."""
    if row.rate_limit_per_sec is None and row.concurrency_limit is None:
        return None
    rate = "" if row.rate_limit_per_sec is None else repr(float(row.rate_limit_per_sec))
    concurrency = "" if row.concurrency_limit is None else str(row.concurrency_limit)
    return f"{rate}|{concurrency}"


def update_queue_settings(
    name: str,
    *,
    paused: bool | None = None,
    rate_limit_per_sec: float | None = _UNCHANGED,
    concurrency_limit: int | None = _UNCHANGED,
    actor: str | None = None,
    reason: str | None = None,
) -> QueueSettings:
    """Pauses/resumes a queue or sets its cluster-wide limits; workers see it at their next pop.

    A paused queue still accepts jobs. `rate_limit_per_sec` None falls back to
    RATE_LIMIT_PER_SEC (0 means no limit); `concurrency_limit` None means no limit. The change
    and its audit entry commit together.
    """
    problems: dict[str, str] = {}
    if not QUEUE_NAME_RE.match(name):
        problems["queue"] = "must be 1-100 letters, digits or _.:-"
    if rate_limit_per_sec is not _UNCHANGED and rate_limit_per_sec is not None:
        if isinstance(rate_limit_per_sec, bool) or not 0 <= rate_limit_per_sec <= MAX_RATE_PER_SEC:
            problems["rateLimitPerSec"] = f"must be between 0 and {MAX_RATE_PER_SEC:g}"
    if concurrency_limit is not _UNCHANGED and concurrency_limit is not None:
        if isinstance(concurrency_limit, bool) or not 1 <= concurrency_limit <= MAX_QUEUE_CONCURRENCY:
            problems["concurrencyLimit"] = f"must be between 1 and {MAX_QUEUE_CONCURRENCY}"
    if problems:
        raise JobValidationError("Invalid queue settings.", problems)
    with transaction.atomic():
        row, _ = QueueSettings.objects.select_for_update().get_or_create(name=name)
        if paused is not None:
            row.paused = paused
        if rate_limit_per_sec is not _UNCHANGED:
            row.rate_limit_per_sec = rate_limit_per_sec
        if concurrency_limit is not _UNCHANGED:
            row.concurrency_limit = concurrency_limit
        row.save()
        only_pause = paused is not None and rate_limit_per_sec is concurrency_limit is _UNCHANGED
        AuditEntry.objects.create(
            actor=actor,
            action=("pause" if paused else "resume") if only_pause else "update-settings",
            target_type="queue",
            target_id=name,
            reason=reason,
            details={
                "paused": row.paused,
                "rateLimitPerSec": row.rate_limit_per_sec,
                "concurrencyLimit": row.concurrency_limit,
            },
        )
    logger.info(
        "queue settings changed",
        extra={
            "queue": name,
            "actor": actor,
            "paused": row.paused,
            "rate_limit_per_sec": row.rate_limit_per_sec,
            "concurrency_limit": row.concurrency_limit,
        },
    )
    spec = queue_limits_spec(row)
    transaction.on_commit(lambda: broker.mirror_queue_quietly(name, row.paused, spec))
    return row


def set_queue_paused(
    name: str, paused: bool, *, actor: str | None = None, reason: str | None = None
) -> QueueSettings:
    """Pauses or resumes a queue: it still accepts jobs, but workers stop claiming from it."""
    return update_queue_settings(name, paused=paused, actor=actor, reason=reason)
