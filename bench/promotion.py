"""Promotion benchmark: how fast the scheduler turns a backlog of due delayed jobs into QUEUED.

    python bench/promotion.py --jobs 100000

Enqueues N delayed noop jobs, makes them all due at once, then runs the scheduler's promote
duty (the same code `runscheduler` ticks) until none is left, and prints jobs/s. Uses its own
database (the POSTGRES_DSN name + "_bench") and Redis DB 15, emptied first. Not a test.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import reset, setup, write_result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=100_000)
    args = parser.parse_args()
    setup()
    from django.db import connection

    from jobs.services import JobSpec, enqueue_jobs
    from scheduler.services import BATCH, MAX_BATCHES_PER_TICK, promote_due_jobs

    reset()
    for offset in range(0, args.jobs, 5000):
        enqueue_jobs(
            [JobSpec("taskforge.noop", delay_ms=3_600_000) for _ in range(min(5000, args.jobs - offset))]
        )
    with connection.cursor() as cursor:
        cursor.execute("UPDATE jobs SET next_run_at = now() - interval '1 second' WHERE state = 'PENDING'")
        cursor.execute("VACUUM ANALYZE jobs")
    started, ticks, promoted = time.perf_counter(), 0, 0
    while n := promote_due_jobs():
        promoted += n
        ticks += 1
    seconds = time.perf_counter() - started
    result = {
        "jobs": args.jobs,
        "promoted": promoted,
        "seconds": round(seconds, 3),
        "jobs_per_sec": round(promoted / seconds, 1),
        "ticks": ticks,
        "per_tick_budget": BATCH * MAX_BATCHES_PER_TICK,
    }
    print(
        f"promoted {promoted} due jobs in {seconds:.2f} s: {promoted / seconds:,.0f} jobs/s ({ticks} ticks)"
    )
    write_result("promotion", result)


if __name__ == "__main__":
    main()
