"""One chaos run: a stack, a steady load, faults on a schedule, then quiet, checks and a report.

Shared by the CI suite (tests/chaos/test_chaos.py: a couple of minutes, every fault kind) and
the soak (bench/soak.py: minutes to hours). It lives under tests/ because it is test machinery
(test-only job types, a ledger, assertions' inputs) that the soak script imports, not a part of
TaskForge; bench/ only adds the long-running entry point and its results file.

    report = run_chaos(ChaosConfig(rate=300, duration_seconds=900), workdir)
    print(report.render())
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from jobs.states import ACTIVE_STATES, JobState
from tests.chaos.faults import FAULTS, FaultSchedule, Injected
from tests.chaos.ledger import LedgerResult, check_ledger
from tests.chaos.load import GAVE_UP, TWICE, Load, Order
from tests.chaos.stack import ApiDown, Ended, Stack, StackConfig
from workers import keys

Progress = Callable[[str], None]
DEPTH_QUEUE = "chaos-depth"
DEPTH_JOBS = 40
FAULT_WINDOW_SECONDS = 10.0


@dataclass(frozen=True)
class ChaosConfig:
    """How hard and how long; the defaults are the CI run's."""

    rate: float = 25.0  # jobs per second
    duration_seconds: float = 75.0
    fault_every_seconds: float = 5.0
    first_fault_after_seconds: float = 5.0
    short_lease_window_seconds: float = 15.0
    quiet_timeout_seconds: float = 180.0
    seed: int = field(default_factory=lambda: random.randrange(1_000_000))
    stack: StackConfig = field(default_factory=StackConfig)


@dataclass
class Report:
    """Everything a run found; `ok` says whether it may pass."""

    config: ChaosConfig
    seconds: float = 0.0
    load_seconds: float = 0.0
    submissions: dict[str, int] = field(default_factory=dict)
    api_answers: dict[str, int] = field(default_factory=dict)
    api_max_latency: dict[str, float] = field(default_factory=dict)
    faults: list[Injected] = field(default_factory=list)
    crashed: list[Ended] = field(default_factory=list)
    exit_codes: dict[str, int] = field(default_factory=dict)
    quiet_after_seconds: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    ledger: LedgerResult = field(default_factory=LedgerResult)
    problems: list[str] = field(default_factory=list)  # besides the ledger's: API, processes, metrics

    @property
    def faults_by_kind(self) -> Counter[str]:
        return Counter(f.kind for f in self.faults)

    @property
    def ok(self) -> bool:
        return not (self.problems or self.ledger.problem_count or self.ledger.lost)

    def throughput(self) -> dict[str, float]:
        """Finished jobs per second: over the load, and in the window after each kind of fault."""
        per_second = self.ledger.finished_per_second
        if not per_second or not self.load_seconds:
            return {}
        start = min(per_second)
        loaded = range(start, start + int(self.load_seconds))
        out = {"whole load": sum(per_second.get(s, 0) for s in loaded) / len(loaded)}
        by_kind: dict[str, list[float]] = {}
        starts = [f.started for f in self.faults] + [float("inf")]
        for fault, following in zip(self.faults, starts[1:], strict=True):
            window = range(int(fault.started), int(min(fault.started + FAULT_WINDOW_SECONDS, following)))
            if window:
                rate = sum(per_second.get(s, 0) for s in window) / len(window)
                by_kind.setdefault(fault.kind, []).append(rate)
        rates = [r for rs in by_kind.values() for r in rs]
        if rates:
            out["during faults"] = sum(rates) / len(rates)
        out |= {f"after {kind}": sum(rs) / len(rs) for kind, rs in sorted(by_kind.items())}
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "config": asdict(self.config),
            "ok": self.ok,
            "seconds": round(self.seconds, 1),
            "load_seconds": round(self.load_seconds, 1),
            "submissions": self.submissions,
            "api_answers": self.api_answers,
            "api_max_latency_seconds": self.api_max_latency,
            "faults_by_kind": dict(self.faults_by_kind),
            "faults": [asdict(f) for f in self.faults],
            "crashed": [asdict(c) for c in self.crashed],
            "exit_codes": self.exit_codes,
            "quiet_after_seconds": self.quiet_after_seconds,
            "metrics": self.metrics,
            "throughput_jobs_per_second": self.throughput(),
            "ledger": self.ledger.to_json(),
            "problems": self.problems,
        }

    def render(self) -> str:
        """The human report."""
        cfg, led, subs = self.config, self.ledger, self.submissions
        throughput = self.throughput()
        duplicates = [
            f"      {n:>8,}  {reason}, e.g. {', '.join(led.duplicate_examples[reason][:1])}"
            for reason, n in led.duplicates.most_common()
        ]
        timing = [
            f"      {group}: p50 {p['p50']:.2f}s, p99 {p['p99']:.2f}s, max {p['max']:.2f}s (n={p['n']:,})"
            for group, p in led.time_to_finish.items()
            if p.get("n")
        ]
        problems = [*self.problems, *led.problems][:50] + [f"lost: {job}" for job in led.lost[:50]]
        rows = [
            ("verdict", "PASS" if self.ok else "FAIL"),
            (
                "jobs submitted",
                f"{subs.get('submitted', 0):,} orders, {subs.get('accepted', 0):,} accepted "
                f"({subs.get('accepted', 0) / max(self.load_seconds, 1):.0f}/s over the load)",
            ),
            ("  by kind", _counts(subs, "submitted ")),
            (
                "  idempotent repeats",
                f"{subs.get('idempotent repeats', 0):,} answered with the same job; "
                f"{subs.get(TWICE, 0):,} keys sent by two processes at once",
            ),
            (
                "  not acknowledged",
                f"{subs.get(GAVE_UP, 0):,} unkeyed submissions got no 2xx "
                f"({led.unacknowledged:,} jobs committed without a 2xx; all must finish)",
            ),
            (
                "  cancels, replays",
                f"{_counts(subs, 'cancel ')}; replayed from the DLQ {subs.get('replayed from the DLQ', 0):,}",
            ),
            ("faults injected", f"{len(self.faults)}: {_counts(self.faults_by_kind)}"),
            ("final states", _counts(led.jobs_by_state)),
            ("JOBS LOST", str(len(led.lost))),
            ("executions", f"{led.executions:,} recorded; {led.failed_runs:,} failed runs, retried"),
            ("duplicates", f"{sum(led.duplicates.values()):,} runs on {led.duplicate_jobs:,} jobs; causes:"),
            ("DLQ by lost leases", f"{led.dead_lettered_by_lost_leases:,} (kills used up their attempts)"),
            ("time to final state", ""),
            (
                "throughput (done/s)",
                ", ".join(f"{k} {v:.0f}" for k, v in throughput.items() if not k.startswith("after ")),
            ),
            ("API answers", _counts(self.api_answers)),
            ("  slowest answer", ", ".join(f"{k} {v:.2f}s" for k, v in sorted(self.api_max_latency.items()))),
            ("metrics vs postgres", ", ".join(f"{k} {v:g}" for k, v in self.metrics.items())),
            ("quiet after load", f"{self.quiet_after_seconds}s"),
            ("processes", f"{len(self.crashed)} crashed; exit codes when stopped {self.exit_codes}"),
            ("PROBLEMS", str(len(self.problems) + led.problem_count + len(led.lost))),
        ]
        extra = {
            "duplicates": duplicates,
            "time to final state": timing,
            "throughput (done/s)": [
                f"      {v:>8.0f}  {k}" for k, v in throughput.items() if k.startswith("after ")
            ],
            "PROBLEMS": [f"      - {p}" for p in problems],
        }
        lines = [
            f"TaskForge chaos report: {self.load_seconds / 60:.1f} min of load at {cfg.rate:g} jobs/s "
            f"(seed {cfg.seed}), {self.seconds / 60:.1f} min in all"
        ]
        for label, text in rows:
            lines.append(f"  {label:<22} {text}".rstrip())
            lines += extra.get(label, [])
        return "\n".join(lines)


def _counts(counts: Mapping[str, int], prefix: str = "") -> str:
    """ "a 3, b 5" for the entries whose name starts with `prefix` (stripped)."""
    return ", ".join(
        f"{k.removeprefix(prefix)} {n:,}" for k, n in sorted(counts.items()) if k.startswith(prefix)
    )


def _unfinished(stack: Stack) -> int:
    states = [str(s) for s in ACTIVE_STATES]
    rows = stack.pg.execute(
        "SELECT count(*) FILTER (WHERE state = ANY(%s)),"
        " count(*) FILTER (WHERE state = 'DLQ' AND job_type = 'chaos.flaky') FROM jobs",
        [states],
    )
    return rows[0][0] + rows[0][1]  # a flaky job in the DLQ still waits for its replay


def _redis_backlog(stack: Stack) -> int:
    r = stack.redis.client(decode_responses=True)
    pipe = r.pipeline(transaction=False)
    for name in r.smembers(keys.QUEUES):
        pipe.zcard(keys.queue_key(name))
    pipe.zcard(keys.INFLIGHT)
    return sum(pipe.execute())


def wait_quiet(stack: Stack, load: Load, timeout: float, progress: Progress | None = None) -> float | None:
    """Seconds until every job finished and Redis holds no id; None if that never happened.

    Every 15 s it says what it is still waiting for.
    """
    started = time.monotonic()
    next_note = started + 15
    while (now := time.monotonic()) - started < timeout:
        stack.revive_crashed()
        waiting = {"orders in flight": not load.settled(), "unfinished jobs": _unfinished(stack)}
        waiting["ids in redis"] = _redis_backlog(stack)
        if not any(waiting.values()):
            return round(now - started, 1)
        if progress is not None and now >= next_note:
            next_note += 15
            progress(f"  still waiting after {now - started:.0f}s: {waiting}")
        time.sleep(0.5)
    return None


def _scrape(stack: Stack) -> dict[str, float]:
    reply = stack.api().call("GET", "/metrics")
    text = reply.body if isinstance(reply.body, str) else ""
    values = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "taskforge_queue_depth" and sample.labels.get("queue") == DEPTH_QUEUE:
                values["queue_depth"] = sample.value
            elif sample.name == "taskforge_dlq_count":
                values["dlq_count"] = sample.value
    return values


def check_metrics(stack: Stack, load: Load, report: Report) -> None:
    """/metrics agrees with Postgres (and Redis with both) on a held-back queue and the DLQ."""
    api = stack.api()
    api.call("POST", f"/queues/{DEPTH_QUEUE}/pause")
    body = {"jobs": [{"jobType": "chaos.noop", "queue": DEPTH_QUEUE} for _ in range(DEPTH_JOBS)]}
    reply = api.call("POST", "/jobs/batch", body)
    if reply.status != 201:
        report.problems.append(f"metrics check: batch submit answered {reply.status}")
        return
    load.subs.count("submitted", DEPTH_JOBS)
    load.subs.count("submitted depth-check", DEPTH_JOBS)
    for item in reply.body["items"]:
        load.subs.accepted(Order("depth", "chaos.noop", {}, {}, JobState.SUCCEEDED), item["id"], False)
    scraped = _scrape(stack)
    (queued, dlq, letters), *_ = stack.pg.execute(
        "SELECT count(*) FILTER (WHERE state = 'QUEUED' AND queue = %s),"
        " count(*) FILTER (WHERE state = 'DLQ'), (SELECT count(*) FROM dead_letters) FROM jobs",
        [DEPTH_QUEUE],
    )
    ready = stack.redis.client().zcard(keys.queue_key(DEPTH_QUEUE))
    report.metrics = {
        "queue_depth metric": scraped.get("queue_depth", -1),
        "QUEUED in postgres": queued,
        "ids in the redis ready queue": ready,
        "dlq_count metric": scraped.get("dlq_count", -1),
        "DLQ in postgres": dlq,
        "dead_letters rows": letters,
    }
    if not scraped.get("queue_depth") == queued == ready == DEPTH_JOBS:
        report.problems.append(f"queue depth disagrees: {report.metrics}")
    if not scraped.get("dlq_count") == dlq == letters:
        report.problems.append(f"DLQ count disagrees: {report.metrics}")
    api.call("POST", f"/queues/{DEPTH_QUEUE}/resume")


def _under_faults(
    stack: Stack,
    load: Load,
    schedule: FaultSchedule,
    config: ChaosConfig,
    report: Report,
    progress: Progress,
    stop: threading.Event,
) -> float:
    """The load phase: a fault every few seconds; returns how long it lasted.

    The duration is a minimum: the load goes on until every kind of fault has hit once, unless
    `stop` is set (the soak's Ctrl-C), which ends the load at once.
    """
    load.start()
    started = time.monotonic()
    next_fault = started + config.first_fault_after_seconds
    next_note = started + 30
    while not stop.is_set():
        now = time.monotonic()
        if now - started >= config.duration_seconds and len(schedule.injected) >= len(FAULTS):
            break
        report.crashed += stack.revive_crashed()
        if now >= next_fault:
            fault = schedule.inject_next(stack)
            progress(f"{now - started:6.0f}s  {fault.kind}: {fault.detail}")
            next_fault = max(next_fault + config.fault_every_seconds, time.monotonic() + 1)
        schedule.undo_due()
        if now >= next_note:
            next_note += 30
            accepted = load.subs.counts["accepted"]
            progress(f"{now - started:6.0f}s  accepted {accepted:,}, waiting to be sent {load.backlog():,}")
        time.sleep(0.1)
    schedule.undo_due(everything=True)
    load.stop_submitting()
    return time.monotonic() - started


def _wind_down(stack: Stack, load: Load, config: ChaosConfig, report: Report, progress: Progress) -> None:
    """Waits for every job to finish, then checks /metrics against Postgres."""
    report.quiet_after_seconds = wait_quiet(stack, load, config.quiet_timeout_seconds, progress)
    if report.quiet_after_seconds is None:
        report.problems.append(f"not quiet {config.quiet_timeout_seconds:g}s after the load stopped")
        return
    try:
        check_metrics(stack, load, report)
    except ApiDown as exc:
        report.problems.append(f"metrics check: no answer ({exc})")
    if wait_quiet(stack, load, 60) is None:
        report.problems.append(f"the {DEPTH_QUEUE} jobs did not finish after the queue resumed")


def run_chaos(
    config: ChaosConfig, workdir: Path, progress: Progress = print, stop: threading.Event | None = None
) -> Report:
    """Runs the whole thing; see the module docstring. `workdir` gets the processes' logs.

    Setting `stop` ends the load early; the wind-down, checks and report still follow.
    """
    report = Report(config)
    started = time.monotonic()
    stack = Stack(workdir, config.stack)
    try:
        stack.start()
        progress(
            f"stack up in {time.monotonic() - started:.0f}s (logs in {workdir}, Postgres in {stack.pg.home})"
        )
        rng = random.Random(config.seed)
        load = Load(stack, config.rate, rng)
        schedule = FaultSchedule(rng, config.short_lease_window_seconds)
        report.load_seconds = _under_faults(
            stack, load, schedule, config, report, progress, stop or threading.Event()
        )
        progress(f"load stopped; waiting for quiet (accepted {load.subs.counts['accepted']:,})")
        _wind_down(stack, load, config, report, progress)
        load.stop()
        report.crashed += stack.revive_crashed()
        report.faults = schedule.injected
        report.submissions = dict(load.subs.counts)
        report.api_answers = dict(load.subs.statuses)
        report.api_max_latency = {k: round(v, 3) for k, v in load.subs.max_latency.items()}
        report.problems += load.subs.problems + [f"{c.name} (pid {c.pid}) {c.how}" for c in report.crashed]
        progress("checking the ledger")
        report.ledger = check_ledger(stack.pg, load.subs.orders, load.subs.ids_by_key, stack.worker_fates())
    finally:
        report.exit_codes = stack.close()
    report.problems += [
        f"{name} exited {code} when stopped" for name, code in report.exit_codes.items() if code
    ]
    report.seconds = time.monotonic() - started
    return report
