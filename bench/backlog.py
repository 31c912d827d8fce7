"""Backlog benchmark: does claiming slow down behind 1,000,000 QUEUED jobs, and what does?

    python bench/backlog.py --backlog 1000000 --measure 100000 --workers 2 --concurrency 5

Enqueues --backlog noop jobs in batches (all QUEUED, all in Redis), then measures with the
backlog standing: one scheduler tick, the live counts behind GET /stats and /metrics, Redis'
memory, and a full re-sync of Redis from Postgres after a FLUSHDB. Then starts a scheduler and
K workers and reports processing jobs/s over the first --measure jobs (the backlog still about
as deep), per 10% of them, to compare with bench/throughput.py's figure on a small backlog.
Writes JSON under bench/results/. Not a test.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import PgCounters, manage, reset, setup, stop, write_result


def _timed_ms(func, repeat: int = 5) -> float:
    """Median wall time of `func()` in ms over `repeat` calls."""
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        func()
        runs.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(runs), 1)


def _succeeded() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM jobs WHERE state = 'SUCCEEDED'")
        return cursor.fetchone()[0]


def fill(backlog: int, batch: int = 5000) -> float:
    """Enqueues the backlog; returns jobs/s."""
    from jobs.services import JobSpec, enqueue_jobs

    started = time.perf_counter()
    for offset in range(0, backlog, batch):
        enqueue_jobs([JobSpec("taskforge.noop") for _ in range(min(batch, backlog - offset))])
        if offset and offset % 100_000 == 0:
            print(f"  {offset:,} enqueued", flush=True)
    return backlog / (time.perf_counter() - started)


def standing_costs() -> dict[str, Any]:
    """What a deep backlog costs the periodic readers (scheduler tick, /stats) and Redis."""
    from django.db import connection

    from jobs.selectors import queue_counts
    from scheduler import runtime, services
    from workers import broker

    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE jobs")
    redis = broker.client()
    costs = {
        "scheduler_tick_ms": _timed_ms(lambda: runtime.tick(retention_days=7)),
        "queue_counts_ms": _timed_ms(queue_counts),
        "redis_used_memory_mb": round(redis.info("memory")["used_memory"] / 2**20, 1),
    }
    redis.flushdb()
    started = time.perf_counter()
    resynced = services.resync_if_redis_lost()
    costs["redis_resync"] = {"jobs": resynced, "seconds": round(time.perf_counter() - started, 2)}
    return costs


def drain(env: dict[str, str], workers: int, concurrency: int, measure: int) -> dict[str, Any]:
    """Processing rate over the first `measure` jobs, overall and per tenth."""
    procs = [manage(env, "runscheduler")]
    procs += [manage(env, "runworker", "--concurrency", str(concurrency)) for _ in range(workers)]
    marks: list[tuple[float, int]] = []
    try:
        deadline = time.monotonic() + 1800
        while time.monotonic() < deadline:
            done = _succeeded()
            marks.append((time.perf_counter(), done))
            if done >= measure:
                break
            time.sleep(0.5)
    finally:
        stop(procs)
    first = next(i for i, (_, n) in enumerate(marks) if n > 0) - 1  # the last sample before any
    t0, n0 = marks[max(first, 0)]
    t1, n1 = marks[-1]
    tenths = []
    for k in range(1, 11):
        target = n0 + (n1 - n0) * k / 10
        tk, nk = next((t, n) for t, n in marks if n >= target)
        prev_t, prev_n = tenths[-1][1:] if tenths else (t0, n0)
        tenths.append((round((nk - prev_n) / (tk - prev_t), 1), tk, nk))
    return {
        "processed": n1 - n0,
        "jobs_per_sec": round((n1 - n0) / (t1 - t0), 1),
        "jobs_per_sec_by_tenth": [rate for rate, _, _ in tenths],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backlog", type=int, default=1_000_000)
    parser.add_argument("--measure", type=int, default=100_000, help="jobs processed while measuring")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=5, help="slots per worker process")
    args = parser.parse_args()

    env = setup()
    reset()
    print(f"enqueueing {args.backlog:,} jobs ...", flush=True)
    result: dict[str, Any] = {
        "backlog": args.backlog,
        "workers": args.workers,
        "concurrency": args.concurrency,
    }
    result["fill_jobs_per_sec"] = round(fill(args.backlog), 1)
    result["standing"] = standing_costs()
    print(f"with {args.backlog:,} QUEUED: {result['standing']}", flush=True)
    before = PgCounters.now()
    result["drain"] = drain(env, args.workers, args.concurrency, args.measure)
    result["drain"]["cost"] = PgCounters.now().per_job_since(before, result["drain"]["processed"])
    d = result["drain"]
    print(
        f"processed {d['processed']:,} of the backlog with {args.workers} workers x {args.concurrency}"
        f" slots: {d['jobs_per_sec']:,.0f} jobs/s (by tenth: {d['jobs_per_sec_by_tenth']}); {d['cost']}",
        flush=True,
    )
    write_result("backlog", result)


if __name__ == "__main__":
    main()
