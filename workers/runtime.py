"""The worker: claim a batch -> run handlers on a thread pool -> settle in batches.

Threads of one worker process:
- main: the claim loop (pop ids from Redis, claim them in one UPDATE, hand them to slots);
- `concurrency` slot threads running handlers;
- the settler: flushes finished attempts in one fenced statement per batch;
- the heartbeat: renews every held lease in one statement, every lease/3, and tells
  handlers whose job was cancelled or whose lease was lost;
- the wake-up listener (workers.broker.Wakeup).
The claim loop holds at most `concurrency + prefetch` jobs: the prefetched ones wait in
memory (under a renewed lease) so the next claim round trip overlaps running jobs instead of
leaving slots idle. `--prefetch 0` claims only for free slots (fairest across workers when
jobs are long). By default prefetch adapts: `concurrency`, or as many jobs as the slots
finish in PREFETCH_HORIZON_SECONDS when that is more, so short jobs are claimed in large
batches (one round trip each for many jobs) while long ones are not hoarded. A pop that finds
nothing resets it to `concurrency`: a burst after a quiet moment is not hoarded on the
strength of the jobs before it. And when long jobs follow short ones with no pause, what was
claimed under the old, larger prefetch and still waits for a slot after GIVE_BACK_SECONDS goes
back to the queue (released, attempt not counted) for idle workers.
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis
from django.db import DatabaseError, InterfaceError, OperationalError, close_old_connections, connection

from jobs.services import ClaimedJob, Outcome, claim_jobs, release_jobs, renew_leases, settle_jobs
from taskforge_site import tracing
from taskforge_site.logging import job_var
from workers import broker, metrics
from workers.context import ChildDied, JobCancelled, JobContext, JobTimeout, PermanentError
from workers.pool import ChildSlot
from workers.registry import get_handler

logger = logging.getLogger("taskforge.worker")

IDLE_POLL_SECONDS = 1.0  # a missed wake-up costs at most this
QUEUE_REFRESH_SECONDS = 2.0  # how soon a worker serving every queue sees a new one
SETTLE_BATCH = 500
SETTLE_LINGER_SECONDS = 0.002  # gather a few more outcomes per statement, barely adding latency
RETRY_PAUSE_SECONDS = 0.5  # after a Postgres or Redis error
BURST_POLL_SECONDS = 0.05
SHUTDOWN_SETTLE_TRIES = 5  # while stopping, then leave the rest to lease expiry
PREFETCH_HORIZON_SECONDS = 0.05  # the default prefetch: what the slots finish in this long
MAX_ADAPTIVE_PREFETCH = 250
RATE_WINDOW_SECONDS = 0.5  # how often the finishing rate behind the adaptive prefetch is updated
# A prefetched job beyond the current prefetch that waited this long for a slot goes back to the
# queue, so slots stuck on long jobs do not hold work that other workers could start.
GIVE_BACK_SECONDS = 1.0
THROTTLE_COUNT_SECONDS = 1.0  # a full worker counts its waiting queues at most this often
# Finished attempts waiting for the settler before the claim loop waits for it: without this
# bound a settler slower than the claims (a slow Postgres) let held jobs pile up without end.
MAX_UNSETTLED = 2 * SETTLE_BATCH
WATCHDOG_SECONDS = 0.1  # how late a timeout may be noticed


@dataclass
class _Held:
    """A job whose lease this worker holds: running, or finished and waiting to settle."""

    job: ClaimedJob
    ctx: JobContext
    done: bool = False
    runtime: float = 0.0  # seconds the handler ran, for the runtime histogram
    deadline: float | None = None  # monotonic time its timeout runs out, once it started
    timed_out: bool = False
    child: ChildSlot | None = None  # with --pool processes: the process running it
    claimed_at: float = field(default_factory=time.monotonic)
    started: bool = False  # a slot took it (set under the worker's lock)
    given_back: bool = False  # released unstarted while the worker was full; slots skip it


@dataclass
class WorkerOptions:
    """How a worker runs; defaults come from settings."""

    queues: Sequence[str] | None = None  # None: every queue, fairly
    concurrency: int = 10
    prefetch: int | None = None  # None: as many as `concurrency`
    burst: bool = False
    lease_seconds: float = 30.0
    shutdown_grace_seconds: float = 30.0
    default_rate_per_sec: float = 0.0  # RATE_LIMIT_PER_SEC: for queues without their own limit
    pool: str = "threads"  # "processes": each slot runs handlers in a child process it can kill
    worker_id: str = field(
        default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
    )


def _db_safe(what: str, func: Callable[[], Any]) -> tuple[bool, Any]:
    """Runs one database step; on a database error drops this thread's connection and reports it.

    The next call reconnects, so a restarted or terminated Postgres backend costs one retry.
    On failure the second value is the exception.
    """
    try:
        return True, func()
    except DatabaseError as exc:
        logger.warning("database error; will retry", extra={"step": what, "error": str(exc)})
        try:
            connection.close()
        except DatabaseError:
            pass
        return False, exc


def run_handler(job: ClaimedJob, ctx: JobContext) -> Outcome:
    """Runs one attempt's handler and turns whatever happens into its Outcome.

    Used by slot threads, and by child processes with --pool processes.
    """
    spec = get_handler(job.job_type)
    bound = job_var.set((str(job.id), job.queue))  # the handler's own log lines carry them
    with tracing.job_span(
        "job.execute",
        traceparent=job.traceparent,
        job_id=job.id,
        queue=job.queue,
        job_type=job.job_type,
        attempt=job.attempt,
    ) as span:
        try:
            if spec is None:  # e.g. a rolling deploy: a newer worker will know it
                raise LookupError(f"no handler registered for job type {job.job_type!r}")
            result = spec.func(ctx, job.payload)
        except JobCancelled:
            return Outcome.cancelled(job)
        except PermanentError as exc:
            tracing.record_failure(span, exc)
            return Outcome.failure(job, exc, permanent=True)
        except BaseException as exc:  # even SystemExit: a handler's bug fails its job, not the worker
            tracing.record_failure(span, exc)
            return Outcome.failure(job, exc, permanent=False)
        finally:
            job_var.reset(bound)
    return Outcome.success(job, result)


class Worker:
    """One worker process's runtime. `run()` blocks until stopped and returns an exit code."""

    def __init__(self, options: WorkerOptions) -> None:
        self.opt = options
        self.id = options.worker_id
        self._held: dict[uuid.UUID, _Held] = {}
        self._lock = threading.Lock()
        self._busy = 0  # claimed and not finished running (waiting for a slot, or running)
        self._finished = 0  # attempts the slots finished, for the adaptive prefetch
        self._rate_mark = (time.monotonic(), 0)
        self._prefetch = options.concurrency if options.prefetch is None else options.prefetch
        self._throttle_counted_at = 0.0
        self._slot_free = threading.Condition(self._lock)
        self._work: queue.SimpleQueue[_Held | None] = queue.SimpleQueue()
        self._outcomes: queue.SimpleQueue[Outcome] = queue.SimpleQueue()
        self._stopping = threading.Event()  # stop claiming
        self._hurry = threading.Event()  # second signal: skip the grace period
        self._settler_stop = threading.Event()
        self._heartbeat_stop = threading.Event()
        self._wakeup = broker.Wakeup(options.queues)
        self._queues: list[str] = list(options.queues or [])
        self._queues_at = 0.0
        self._rotation = 0
        self._started_at = time.time()
        self._unacked: list[uuid.UUID] = []  # claimed or dropped ids still in Redis' in-flight set
        # Popped, but the claim failed in flight: retried first, with the same lease token.
        self._unclaimed: tuple[list[uuid.UUID], uuid.UUID] | None = None
        self._unstarted: dict[uuid.UUID, uuid.UUID] = {}  # claimed, never started, at shutdown
        self._slots: dict[uuid.UUID, str] = {}  # job id -> queue, for jobs holding a concurrency slot
        self._giving_back: dict[uuid.UUID, uuid.UUID] = {}  # marked given back, release not written yet
        self._hoard_checked_at = 0.0

    # ---- control -----------------------------------------------------------------------
    def request_stop(self) -> None:
        """First call: stop claiming and drain. Second call: release running jobs now.

        Called from the signal relay thread (taskforge_site.shutdown), never a signal handler.
        """
        if self._stopping.is_set():
            self._hurry.set()
        self._stopping.set()
        self._wakeup.event.set()

    # ---- main loop ---------------------------------------------------------------------
    def run(self) -> int:
        """Claims and runs jobs until stopped (or, with burst, until the queues are empty)."""
        threads = [
            threading.Thread(target=self._slot_loop, name=f"taskforge-slot-{i}", daemon=True)
            for i in range(self.opt.concurrency)
        ]
        settler = threading.Thread(target=self._settle_loop, name="taskforge-settler", daemon=True)
        heartbeat = threading.Thread(target=self._heartbeat_loop, name="taskforge-heartbeat", daemon=True)
        watchdog = threading.Thread(target=self._watchdog_loop, name="taskforge-watchdog", daemon=True)
        for thread in (*threads, settler, heartbeat, watchdog):
            thread.start()
        self._wakeup.start()
        flusher = metrics.Flusher()
        flusher.start()
        logger.info(
            "worker started",
            extra={
                "worker_id": self.id,
                "queues": self.opt.queues or "*",
                "concurrency": self.opt.concurrency,
            },
        )
        while not self._stopping.is_set():
            if not self._claim_once() and self.opt.burst and self._idle():
                break
        self._shutdown(threads, settler, heartbeat)
        flusher.stop()  # after the last settle, so its counts are in
        logger.info("worker stopped", extra={"worker_id": self.id})
        return 0

    def _claim_once(self) -> bool:
        """One turn of the claim loop; False when there was nothing to claim."""
        if self._full() and time.monotonic() - self._throttle_counted_at >= THROTTLE_COUNT_SECONDS:
            self._throttle_counted_at = time.monotonic()
            self._count_throttled()
        if self._giving_back:  # a give-back whose release failed: before anything else
            self._give_back({})
            return True
        hoarded: dict[uuid.UUID, uuid.UUID] = {}
        with self._lock:
            while not self._stopping.is_set() and not (free := self._claimable()):
                self._slot_free.wait(timeout=0.2)
                if hoarded := self._hoarded():
                    break
        if hoarded:
            self._give_back(hoarded)
            return True
        if self._stopping.is_set():
            return True
        token, retrying = uuid.uuid4(), self._unclaimed is not None
        if self._unclaimed is not None:
            (ids, token), self._unclaimed = self._unclaimed, None
        else:
            ids = self._pop(free)
            if ids is None:
                return True
            if not ids:
                return False
        ok, jobs = _db_safe(
            "claim",
            lambda: claim_jobs(
                worker_id=self.id,
                ids=ids,
                lease_seconds=self.opt.lease_seconds,
                token=token,
                retrying=retrying,
            ),
        )
        if not ok:  # still in flight in Redis: retry them first (the scheduler covers a crash)
            self._unclaimed = (ids, token)
            self._stopping.wait(RETRY_PAUSE_SECONDS)
            return True
        # Acknowledged with the next pop; if that never comes, the scheduler drops in-flight ids
        # whose job is no longer QUEUED.
        self._unacked += ids
        claimed = {job.id for job in jobs}
        self._free_slots([i for i in ids if i not in claimed])  # canceled or taken meanwhile
        with self._lock:
            for job in jobs:
                held = _Held(job, self._context(job))
                self._held[job.id] = held
                self._busy += 1
                self._work.put(held)
        metrics.record_claimed((job.queue, (job.started_at - job.queued_at).total_seconds()) for job in jobs)
        return True

    def _pop(self, free: int) -> list[uuid.UUID] | None:
        """Ids for up to `free` jobs within the queues' limits; [] after waiting idle; None on error."""
        self._wakeup.event.clear()  # before popping, so a publish during the pop is not missed
        try:
            popped = broker.pop_ready(
                self._current_queues(),
                free,
                fair=self.opt.queues is None,
                ack=self._unacked,
                default_rate=self.opt.default_rate_per_sec,
                lease_ms=int(self.opt.lease_seconds * 1000),
                holder=self.id,
            )
            self._unacked = []
        except redis.RedisError as exc:
            logger.warning("redis error while popping; will retry", extra={"error": str(exc)})
            self._stopping.wait(RETRY_PAUSE_SECONDS)
            return None
        for queue_name, kind in popped.throttled:
            metrics.count_throttled(queue_name, kind)
        with self._lock:
            self._slots.update((job_id, popped.queue_of[job_id]) for job_id in popped.limited)
            if not popped.ids and not popped.throttled and self.opt.prefetch is None:
                # Queues ran dry: what comes next may be long jobs, so the next burst starts
                # from concurrency and the rate has to show again that its jobs are short.
                self._prefetch = self.opt.concurrency
                self._rate_mark = (time.monotonic(), self._finished)
        if not popped.ids:
            # Held back by a rate limit: wait for the next token. In burst mode only running
            # jobs are awaited, so poll briefly. Otherwise idle until a wake-up.
            idle = BURST_POLL_SECONDS if self.opt.burst else IDLE_POLL_SECONDS
            self._wakeup.event.wait(min(popped.wait_seconds or idle, idle))
        return popped.ids

    def _free_slots(self, job_ids: Iterable[uuid.UUID]) -> None:
        """Gives back the concurrency slots these jobs held (if their queue has a limit)."""
        with self._lock:
            freed: dict[str, list[uuid.UUID]] = {}
            for job_id in job_ids:
                queue_name = self._slots.pop(job_id, None)
                if queue_name is not None:
                    freed.setdefault(queue_name, []).append(job_id)
        if freed:
            try:
                broker.release_slots(freed, self.id)
            except redis.RedisError:
                pass  # the slots expire with the lease they were renewed for

    def _capacity(self) -> int:
        """concurrency + prefetch; the default prefetch follows the finishing rate. Lock held."""
        if self.opt.prefetch is None:
            now = time.monotonic()
            since, finished = self._rate_mark
            if now - since >= RATE_WINDOW_SECONDS:
                rate = (self._finished - finished) / (now - since)
                wanted = min(MAX_ADAPTIVE_PREFETCH, int(rate * PREFETCH_HORIZON_SECONDS))
                self._prefetch = max(self.opt.concurrency, wanted)
                self._rate_mark = (now, self._finished)
        return self.opt.concurrency + self._prefetch

    def _claimable(self) -> int:
        """How many jobs to claim now; 0: wait. Lock held.

        Once a slot would otherwise idle, or half the prefetch is free: one round trip for a
        batch rather than one per freed slot. Never while the settler is MAX_UNSETTLED behind.
        """
        free = self._capacity() - self._busy
        if len(self._held) - self._busy >= MAX_UNSETTLED:
            return 0
        if self._busy < self.opt.concurrency or free >= max(1, self._prefetch // 2):
            return free
        return 0

    def _hoarded(self) -> dict[uuid.UUID, uuid.UUID]:
        """Prefetched jobs to give back: {id: lease token}. Lock held.

        When the slots are stuck on jobs longer than the ones before them, the prefetch target
        shrinks but what was claimed under the old one waits. Once the oldest waiting job has
        waited GIVE_BACK_SECONDS, the newest beyond the target (they would start last) go back.
        """
        now = time.monotonic()
        if now - self._hoard_checked_at < GIVE_BACK_SECONDS / 4:  # not on every finished job
            return {}
        self._hoard_checked_at = now
        waiting = [
            h for h in self._held.values() if not (h.started or h.done or h.given_back or h.ctx.lease_lost)
        ]
        excess = len(waiting) - self._prefetch
        if excess <= 0 or min(h.claimed_at for h in waiting) > now - GIVE_BACK_SECONDS:
            return {}
        waiting.sort(key=lambda h: h.claimed_at)
        newest = waiting[-excess:]
        for held in newest:
            held.given_back = True
        return {h.job.id: h.job.lease_token for h in newest}

    def _give_back(self, jobs: dict[uuid.UUID, uuid.UUID]) -> None:
        """Releases jobs _hoarded() marked, and any whose release failed before.

        They stay in _held, their leases renewed by the heartbeat, until the release is
        written: a job handed back is never left to lease expiry, which would count an attempt
        it never ran. Their in-flight ids are acked first, so this worker's next pop cannot
        erase the record of another worker that popped them meanwhile.
        """
        with self._lock:
            self._giving_back.update(jobs)
            pending = dict(self._giving_back)
            self._unacked = [job_id for job_id in self._unacked if job_id not in pending]
        logger.info("giving back prefetched jobs", extra={"worker_id": self.id, "jobs": len(pending)})
        try:
            broker.ack_inflight(pending)
        except redis.RedisError:
            pass  # the scheduler drops stale in-flight ids of jobs no longer QUEUED
        self._free_slots(pending)
        ok, _ = _db_safe("give back", lambda: release_jobs(worker_id=self.id, held=pending))
        if not ok:
            self._stopping.wait(RETRY_PAUSE_SECONDS)
            return
        with self._lock:
            for job_id in pending:
                self._giving_back.pop(job_id, None)
                entry = self._held.pop(job_id, None)
                if entry is not None:
                    entry.ctx.mark_lease_lost()

    def _full(self) -> bool:
        with self._lock:
            return self._busy >= self._capacity()

    def _count_throttled(self) -> None:
        """No free slot: counts one concurrency throttle per served queue with jobs waiting.

        One ZCARD pipeline, only when the worker is full (rare while jobs are short, and cheap
        next to the jobs when they are long).
        """
        try:
            waiting = broker.queues_with_backlog(self._queues)
        except redis.RedisError:
            return  # the pop that follows reports the outage
        for queue_name in waiting:
            metrics.count_throttled(queue_name, "concurrency")

    def _current_queues(self) -> list[str]:
        """The queues to pop from this turn: the given ones in order, or every known queue in turn."""
        if self.opt.queues:
            return self._queues
        now = time.monotonic()
        if now - self._queues_at > QUEUE_REFRESH_SECONDS or not self._queues:
            self._queues = broker.known_queues()
            self._queues_at = now
        self._rotation = (self._rotation + 1) % max(len(self._queues), 1)
        return self._queues[self._rotation :] + self._queues[: self._rotation]

    def _context(self, job: ClaimedJob) -> JobContext:
        return JobContext(
            job_id=job.id,
            job_type=job.job_type,
            queue=job.queue,
            attempt=job.attempt,
            max_attempts=job.policy.max_attempts,
            worker_id=self.id,
        )

    def _idle(self) -> bool:
        with self._lock:
            return not self._held

    # ---- slots ---------------------------------------------------------------------------
    def _slot_loop(self) -> None:
        child = ChildSlot() if self.opt.pool == "processes" else None
        while (held := self._work.get()) is not None:
            with self._lock:
                # Lost while it waited (expired, moved by an operator) or given back: not ours.
                gone = held.ctx.lease_lost or held.given_back
                if self._stopping.is_set() and not gone:  # claimed jobs not yet started go back
                    self._unstarted[held.job.id] = held.job.lease_token
                elif gone:
                    held.done = True  # the next heartbeat forgets it
                else:
                    held.started = True
                if not held.started:
                    self._busy -= 1
                    self._slot_free.notify()
                    continue
            try:
                outcome = self._execute(held, child)
            except BaseException as exc:  # a bug around the handler (lookup, tracing): fail, never strand
                logger.exception("could not run the attempt", extra={"job_id": str(held.job.id)})
                outcome = Outcome.failure(held.job, exc, permanent=False)
            finally:  # whatever the handler did, the slot is free again
                with self._lock:
                    held.done = True
                    self._busy -= 1
                    self._finished += 1
                    self._slot_free.notify()
            if outcome is not None:
                self._outcomes.put(outcome)
            close_old_connections()  # a handler may have used (and broken) this thread's connection

    def _execute(self, held: _Held, child: ChildSlot | None) -> Outcome | None:
        """Runs the handler; None when the attempt no longer counts (its lease was lost)."""
        job, ctx = held.job, held.ctx
        started = time.perf_counter()
        with self._lock:
            held.child = child
            if job.timeout_ms:
                held.deadline = time.monotonic() + job.timeout_ms / 1000
        try:
            outcome = run_handler(job, ctx) if child is None else child.run(job)
        finally:
            held.runtime = time.perf_counter() - started
        if outcome is None:  # the child died: killed by the watchdog, or crashed
            outcome = Outcome.failure(job, ChildDied("the handler's process died"), permanent=False)
        context = {
            "job_id": str(job.id),
            "queue": job.queue,
            "job_type": job.job_type,
            "attempt": job.attempt,
        }
        if ctx.lease_lost or held.timed_out:
            logger.warning("lease lost or timed out while running; result dropped", extra=context)
            return None
        if outcome.error is not None:
            logger.warning(
                "attempt failed", extra={**context, "error": outcome.error, "state": str(outcome.state)}
            )
        return outcome

    # ---- settling ------------------------------------------------------------------------
    def _settle_loop(self) -> None:
        pending: list[Outcome] = []
        tries_left = SHUTDOWN_SETTLE_TRIES
        while True:
            if not pending:
                try:
                    pending.append(self._outcomes.get(timeout=0.2))
                except queue.Empty:
                    if self._settler_stop.is_set():
                        break
                    continue
            deadline = time.monotonic() + SETTLE_LINGER_SECONDS
            while len(pending) < SETTLE_BATCH:
                try:
                    pending.append(self._outcomes.get(timeout=max(deadline - time.monotonic(), 0)))
                except queue.Empty:
                    break
            if self._flush(pending):
                pending = []
                continue
            if self._settler_stop.is_set():
                tries_left -= 1
                if tries_left <= 0 or self._hurry.is_set():
                    break  # give up: their leases expire and the scheduler runs them again
            self._hurry.wait(RETRY_PAUSE_SECONDS)
        connection.close()

    def _settle(self, outcomes: list[Outcome]) -> dict[uuid.UUID, str] | None:
        """One fenced statement; None when Postgres is unreachable (keep and retry).

        If Postgres refuses the batch itself (bad data), each outcome is tried alone and the
        ones still refused are dropped: their leases expire and the jobs run again.
        """
        ok, settled = _db_safe("settle", lambda: settle_jobs(worker_id=self.id, outcomes=outcomes))
        if ok:
            return settled
        if isinstance(settled, OperationalError | InterfaceError):
            return None
        merged: dict[uuid.UUID, str] = {}
        for outcome in outcomes:
            ok, one = _db_safe("settle", lambda o=outcome: settle_jobs(worker_id=self.id, outcomes=[o]))
            if ok:
                merged.update(one)
            elif isinstance(one, OperationalError | InterfaceError):
                return None
            else:
                logger.error(
                    "settle refused; the job runs again after its lease",
                    extra={"job_id": str(outcome.job_id)},
                )
        return merged

    def _flush(self, outcomes: list[Outcome]) -> bool:
        # Taken before the settle: a heartbeat whose renewal ran after the settle committed finds
        # these jobs no longer RUNNING and drops them from _held, so they would go uncounted.
        with self._lock:
            held = {o.job_id: self._held.get(o.job_id) for o in outcomes}
        settled = self._settle(outcomes)
        if settled is None:
            return False  # keep them; the heartbeat keeps their leases alive meanwhile
        metrics.record_settled(  # success/failure and runtime; fenced-out attempts do not count
            (h.job.queue, state, h.runtime)
            for job_id, state in settled.items()
            if (h := held.get(job_id)) is not None
        )
        for outcome in outcomes:
            if outcome.job_id not in settled:
                logger.warning(
                    "stale settle dropped: the lease was lost",
                    extra={"job_id": str(outcome.job_id), "state": str(outcome.state)},
                )
        with self._lock:
            for outcome in outcomes:
                self._held.pop(outcome.job_id, None)
            self._slot_free.notify()  # the claim loop may be waiting for the settler
        self._free_slots(o.job_id for o in outcomes)
        return True

    # ---- heartbeat -----------------------------------------------------------------------
    def _watchdog_loop(self) -> None:
        """Fails attempts that overran their job's timeout; a late result is dropped.

        A thread cannot be killed: the handler keeps its slot until it returns (or the worker
        exits), but the job itself moves on at once.
        """
        while not self._heartbeat_stop.wait(WATCHDOG_SECONDS):
            now = time.monotonic()
            with self._lock:
                overdue = [
                    h
                    for h in self._held.values()
                    if h.deadline is not None and now > h.deadline and not h.done and not h.timed_out
                ]
                for held in overdue:
                    held.timed_out = True
                    held.ctx.mark_cancel_requested()  # cooperative handlers can stop now
                    if held.child is not None:
                        held.child.kill()  # a process can be stopped for real; its slot gets a new one
            for held in overdue:
                error = JobTimeout(f"ran longer than its timeout of {held.job.timeout_ms} ms")
                self._outcomes.put(Outcome.failure(held.job, error, permanent=False))

    def _heartbeat_loop(self) -> None:
        interval = self.opt.lease_seconds / 3
        self._beat()  # announce the worker at once
        while not self._heartbeat_stop.wait(interval):
            self._beat()
        connection.close()

    def _beat(self) -> None:
        with self._lock:
            held = {job_id: h.job.lease_token for job_id, h in self._held.items()}
            busy = self._busy
        ok, renewed = _db_safe(
            "heartbeat", lambda: renew_leases(held=held, lease_seconds=self.opt.lease_seconds)
        )
        if ok:
            with self._lock:
                for job_id in held:
                    entry = self._held.get(job_id)
                    if entry is None:
                        continue
                    if job_id not in renewed:
                        entry.ctx.mark_lease_lost()
                        if entry.done:  # its settle would be fenced anyway
                            self._held.pop(job_id, None)
                    elif renewed[job_id]:
                        entry.ctx.mark_cancel_requested()
        with self._lock:
            slots: dict[str, list[uuid.UUID]] = {}
            for job_id, queue_name in self._slots.items():
                slots.setdefault(queue_name, []).append(job_id)
        try:
            broker.renew_slots(slots, self.id, int(self.opt.lease_seconds * 1000))
            broker.record_worker(self.id, self._info(busy), ttl_seconds=self.opt.lease_seconds)
        except redis.RedisError:
            pass  # slots and the worker entry expire late or early; jobs are unaffected

    def _info(self, busy: int) -> dict[str, Any]:
        return {
            "id": self.id,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "queues": ",".join(self.opt.queues or ["*"]),
            "slots": self.opt.concurrency,
            "busy": min(busy, self.opt.concurrency),
            "started_at": self._started_at,
        }

    # ---- shutdown ------------------------------------------------------------------------
    def _release(self, jobs: dict[uuid.UUID, uuid.UUID]) -> None:
        """Hands jobs back to the queue (attempt not counted); their late results are void."""
        with self._lock:
            jobs = dict(jobs)
            for job_id in jobs:
                entry = self._held.pop(job_id, None)
                if entry is not None:
                    entry.ctx.mark_lease_lost()
        self._free_slots(jobs)
        if jobs:
            ok, released = _db_safe("release", lambda: release_jobs(worker_id=self.id, held=jobs))
            logger.info("released jobs", extra={"worker_id": self.id, "released": released if ok else 0})

    def _shutdown(
        self, threads: list[threading.Thread], settler: threading.Thread, heartbeat: threading.Thread
    ) -> None:
        """Release jobs not started yet, let running ones finish within the grace period,
        release the rest, flush settles, leave."""
        with self._lock:
            while True:  # prefetched jobs no slot has taken yet
                try:
                    held = self._work.get_nowait()
                except queue.Empty:
                    break
                if held is not None:
                    if not held.given_back:  # released, or pending in _giving_back
                        self._unstarted[held.job.id] = held.job.lease_token
                    self._busy -= 1
            unstarted, self._unstarted = {**self._giving_back, **self._unstarted}, {}
            self._giving_back.clear()
        self._release(unstarted)
        deadline = time.monotonic() + self.opt.shutdown_grace_seconds
        with self._lock:
            while self._busy and not self._hurry.is_set() and time.monotonic() < deadline:
                self._slot_free.wait(timeout=0.1)
            # a slot may still move a job it took into _unstarted: gather those too
            unfinished = {job_id: h.job.lease_token for job_id, h in self._held.items() if not h.done}
        self._release(unfinished)
        for _ in threads:
            self._work.put(None)
        self._settler_stop.set()
        settler.join()
        self._heartbeat_stop.set()
        heartbeat.join(timeout=5)
        try:
            broker.ack_inflight(self._unacked)  # never-claimed ids stay: the scheduler re-queues them
            broker.forget_worker(self.id)
        except redis.RedisError:
            pass  # stale in-flight ids are cleaned up by the scheduler, the worker entry expires
        connection.close()
