"""The end-of-run checks: every acknowledged job finished, ran, settled once, and moved legally.

Sources: the accepted orders (what clients were told), `jobs` and `job_events` (what TaskForge
did), and `chaos_executions` (what handlers really ran; tests/chaos/handlers.py). Events are
walked against jobs.states.TRANSITIONS with the event -> state mapping of docs/conventions.md:
`failed`, `lease_expired` and `cancel_requested` keep the state, every other event names the
new one. Each execution is matched to the claim it ran under (attempt and worker id), and the
claim's end says why it did or did not count: a run beyond the settled one is a duplicate,
allowed by at-least-once only when its lease expired or its worker released it, and it is
attributed to how that worker ended (killed, stopped, or alive but late with its heartbeat).
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from jobs.states import FINISHED_STATES, JobState, can_transition
from tests.chaos.handlers import LEDGER_TABLE
from tests.chaos.load import Order
from tests.chaos.servers import PrivatePostgres
from tests.chaos.stack import Ended

# Events that move a job, and where to; `created` names its state in details.
EVENT_STATE = {
    "queued": JobState.QUEUED,
    "claimed": JobState.RUNNING,
    "succeeded": JobState.SUCCEEDED,
    "retry_scheduled": JobState.RETRYING,
    "released": JobState.QUEUED,
    "dead_lettered": JobState.DLQ,
    "replayed": JobState.QUEUED,
    "retried": JobState.QUEUED,
    "canceled": JobState.CANCELED,
}
STAYING_EVENTS = {"failed", "lease_expired", "cancel_requested"}
# How a claim ended, for a run under it that did not settle the job.
RERUN_CAUSES = {"lease_expired", "released"}
MAX_PROBLEMS = 200


@dataclass
class Claim:
    """One attempt as the events tell it: who claimed it and when, and the event that ended it."""

    attempt: int
    worker: str
    at: datetime
    end: str | None = None
    ended_at: datetime | None = None


@dataclass
class Walk:
    state: str | None
    claims: list[Claim]
    problems: list[str]


def walk_events(events: list[tuple[str, int, str | None, datetime, str | None]]) -> Walk:
    """Replays (type, attempt, worker id, time, created state) against the state table."""
    state: str | None = None
    claims: list[Claim] = []
    problems: list[str] = []
    unresolved: str | None = None  # a failed attempt or lost lease whose outcome event is due
    for kind, attempt, worker, at, created_state in events:
        if kind == "created":
            if state is not None:
                problems.append("a second `created` event")
            state = created_state
            continue
        if state is None:
            problems.append(f"`{kind}` before `created`")
            continue
        running = claims[-1] if claims and claims[-1].end is None and state == JobState.RUNNING else None
        if kind in STAYING_EVENTS:
            if state != JobState.RUNNING:
                problems.append(f"`{kind}` while {state}")
            elif running is not None and kind != "cancel_requested":
                running.end, running.ended_at = kind, at
            if kind != "cancel_requested":
                if unresolved is not None:
                    problems.append(f"`{kind}` after `{unresolved}` with no move between")
                unresolved = kind
            continue
        new = EVENT_STATE.get(kind)
        if new is None:
            problems.append(f"unknown event `{kind}`")
            continue
        if not can_transition(state, new):
            problems.append(f"illegal move {state} -> {new} (`{kind}`)")
        if running is not None and running.end is None:
            running.end, running.ended_at = kind, at
        if new == JobState.RUNNING:
            claims.append(Claim(attempt, worker or "", at))
        state, unresolved = new, None
    if unresolved is not None:
        problems.append(f"ends with `{unresolved}` and no move after it")
    return Walk(state, claims, problems)


def worker_pid(worker_id: str) -> int | None:
    """Worker ids are host:pid:suffix (workers.runtime.WorkerOptions)."""
    try:
        return int(worker_id.rsplit(":", 2)[-2])
    except (ValueError, IndexError):
        return None


def rerun_reason(claim: Claim, worker_fates: dict[int, Ended]) -> str:
    """Why a run under this claim did not count, in words."""
    if claim.end == "released":
        return "released by a worker stopping (SIGTERM, past the grace period)"
    fate = worker_fates.get(worker_pid(claim.worker) or -1)
    assert claim.ended_at is not None
    if fate is None or claim.ended_at.timestamp() < fate.at:
        return "lease lost by a live worker (heartbeat late: outage or short lease)"
    return f"lease expired: its worker ended ({fate.how})"


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return {"n": len(values), "p50": statistics.median(ordered), "p99": p99, "max": ordered[-1]}


@dataclass
class LedgerResult:
    """What the checks found; `problems` and `lost` must both be empty."""

    jobs_by_state: Counter[str] = field(default_factory=Counter)
    lost: list[str] = field(default_factory=list)
    unacknowledged: int = 0  # jobs committed whose submission got no 2xx (allowed; must finish too)
    problems: list[str] = field(default_factory=list)
    problem_count: int = 0
    executions: int = 0
    duplicates: Counter[str] = field(default_factory=Counter)  # reason -> runs that did not count
    duplicate_examples: dict[str, list[str]] = field(default_factory=dict)  # reason -> a few job ids
    duplicate_jobs: int = 0
    failed_runs: int = 0  # runs whose handler failed, retried as designed
    dead_lettered_by_lost_leases: int = 0
    time_to_finish: dict[str, dict[str, float]] = field(default_factory=dict)
    finished_per_second: dict[int, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        fields = {k: v for k, v in vars(self).items() if k != "finished_per_second"}
        return {k: dict(v) if isinstance(v, Counter) else v for k, v in fields.items()}

    def problem(self, text: str) -> None:
        self.problem_count += 1
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(text)


Run = tuple[int, str, datetime]  # attempt, worker id, when the handler started


def _load(pg: PrivatePostgres) -> tuple[dict[str, tuple[Any, ...]], dict[str, list[Run]]]:
    jobs = {
        str(row[0]): row
        for row in pg.execute(
            "SELECT id, job_type, state, attempt_count, max_attempts, created_at, finished_at FROM jobs"
        )
    }
    runs: dict[str, list[Run]] = defaultdict(list)
    for job_id, *run in pg.execute(f"SELECT job_id, attempt, worker_id, at FROM {LEDGER_TABLE}"):
        runs[str(job_id)].append(tuple(run))
    return jobs, runs


def _events(pg: PrivatePostgres) -> Any:
    """(job id, its events) for every job, streamed: a long soak has millions of events."""
    with pg.connect() as conn, conn.transaction(), conn.cursor(name="events") as cursor:
        cursor.itersize = 20_000
        cursor.execute(
            "SELECT job_id, type, attempt, worker_id, at, details->>'state'"
            " FROM job_events ORDER BY job_id, id"
        )
        current, events = None, []
        for job_id, *event in cursor:
            if job_id != current:
                if current is not None:
                    yield str(current), events
                current, events = job_id, []
            events.append(tuple(event))
        if current is not None:
            yield str(current), events


def check_ledger(
    pg: PrivatePostgres,
    orders: dict[str, Order],
    ids_by_key: dict[str, set[str]],
    worker_fates: dict[int, Ended],
) -> LedgerResult:
    """Runs every check once the run is quiet; see the module docstring."""
    result = LedgerResult()
    jobs, runs = _load(pg)
    result.executions = sum(len(r) for r in runs.values())
    seen: set[str] = set()
    for job_id, events in _events(pg):
        seen.add(job_id)
        job = jobs.get(job_id)
        if job is None:
            result.problem(f"{job_id}: events of a job that does not exist")
            continue
        judge_job(
            result, job_id, job, walk_events(events), runs.get(job_id, []), orders.get(job_id), worker_fates
        )
    for job_id in jobs.keys() - seen:
        result.problem(f"{job_id}: a job without events")
    for job_id, job in jobs.items():
        result.jobs_by_state[job[2]] += 1
        if job_id not in orders:
            result.unacknowledged += 1
        if job[2] not in FINISHED_STATES:
            result.lost.append(
                f"{job_id} ({job[1]}, {job[2]}{'' if job_id in orders else ', unacknowledged'})"
            )
    for job_id, order in orders.items():
        if job_id not in jobs:
            result.lost.append(f"{job_id} ({order.kind}: acknowledged, not in the database)")
    for key, ids in ids_by_key.items():
        if len(ids) > 1:
            result.problem(f"idempotency key {key} accepted as {len(ids)} jobs: {sorted(ids)}")
    for queue, key, n in pg.execute(
        "SELECT queue, idempotency_key, count(*) FROM jobs WHERE idempotency_key IS NOT NULL"
        " GROUP BY queue, idempotency_key HAVING count(*) > 1"
    ):
        result.problem(f"{n} jobs hold idempotency key {key} in queue {queue}")
    _timing(result, jobs, orders)
    return result


def judge_job(
    result: LedgerResult,
    job_id: str,
    job: tuple[Any, ...],
    walk: Walk,
    job_runs: list[Run],
    order: Order | None,
    worker_fates: dict[int, Ended],
) -> None:
    """Every check of one job (`job` is a row of _load); what fails goes to `result`."""
    _, job_type, state, _attempts, _max_attempts, _created, _finished = job
    for text in walk.problems:
        result.problem(f"{job_id}: {text}")
    if walk.state != state:
        result.problem(f"{job_id}: events end in {walk.state}, the job is {state}")
    runs_of: dict[int, int] = Counter()  # claim index -> runs under it
    for attempt, worker, at in job_runs:
        # A replay restarts the attempt count: the claim is the last one of (attempt, worker) before the run.
        under = [
            i for i, c in enumerate(walk.claims) if (c.attempt, c.worker) == (attempt, worker) and c.at <= at
        ]
        if not under:
            result.problem(f"{job_id}: ran attempt {attempt} on {worker} without claiming it")
            continue
        runs_of[under[-1]] += 1
    for index, n in runs_of.items():
        claim = walk.claims[index]
        if n > 1:
            result.problem(
                f"{job_id}: attempt {claim.attempt} on {claim.worker} ran {n} times under one claim"
            )
        if claim.end in RERUN_CAUSES:
            reason = rerun_reason(claim, worker_fates)
            result.duplicates[reason] += n
            examples = result.duplicate_examples.setdefault(reason, [])
            if len(examples) < 3:
                examples.append(job_id)
        elif claim.end == "failed":
            result.failed_runs += n
        elif claim.end not in ("succeeded", "canceled"):
            result.problem(f"{job_id}: attempt {claim.attempt} ran, and its claim ended `{claim.end}`")
    result.duplicate_jobs += any(walk.claims[i].end in RERUN_CAUSES for i in runs_of)
    if state == JobState.SUCCEEDED:
        settled = [i for i, c in enumerate(walk.claims) if c.end == "succeeded"]
        if len(settled) != 1:
            result.problem(f"{job_id}: SUCCEEDED, settled {len(settled)} times")
        elif job_type.startswith("chaos.") and not runs_of[settled[0]]:
            result.problem(
                f"{job_id}: SUCCEEDED by attempt {walk.claims[settled[0]].attempt}, which never ran"
            )
    if order is not None:
        _expected(result, job_id, state, walk, order)


def _expected(result: LedgerResult, job_id: str, state: str, walk: Walk, order: Order) -> None:
    """The end the order's kind calls for; a cancel that came too late allows any end."""
    expect = order.expect
    if expect == JobState.CANCELED and order.cancel in ("too late", "unknown", None):
        expect = None
    if expect is None or state == expect:
        return
    lost_leases = sum(c.end == "lease_expired" for c in walk.claims)
    if state == JobState.DLQ and expect == JobState.SUCCEEDED and lost_leases:
        result.dead_lettered_by_lost_leases += 1  # every attempt counts, lost ones too (DESIGN §3)
        return
    result.problem(f"{job_id}: a {order.kind} job (cancel: {order.cancel}) ended {state}, not {expect}")


def _timing(result: LedgerResult, jobs: dict[str, tuple[Any, ...]], orders: dict[str, Order]) -> None:
    spans: dict[str, list[float]] = defaultdict(list)
    per_second: Counter[int] = Counter()
    for job_id, (*_, created, finished) in jobs.items():
        if finished is None:
            continue
        per_second[int(finished.timestamp())] += 1
        order = orders.get(job_id)
        if order is None:
            continue
        seconds = (finished - created).total_seconds()
        spans["every acknowledged job"].append(seconds)
        if order.kind in ("noop", "sleep"):
            spans["immediate noop/sleep jobs"].append(seconds)
    result.time_to_finish = {group: percentiles(values) for group, values in spans.items()}
    result.finished_per_second = dict(per_second)
