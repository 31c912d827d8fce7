"""Latency benchmark: enqueue→start at a steady rate, with idle workers waiting for work.

    python bench/latency.py --rate 100 --seconds 30 --workers 2 --concurrency 5

Starts a scheduler and K workers, lets them go idle, then enqueues noop jobs one by one
through the Python API (`enqueue_job`, each its own commit) on a fixed schedule of --rate
per second. For each job it takes the wall clock just before the enqueue call and compares
it with the job's `started_at` (the clock of the claim statement that handed it to a worker,
same machine, same clock); acknowledged->start starts the clock when enqueue_job returned.
Prints percentiles of those and of enqueue->finished, and writes them as JSON under
bench/results/. Not a test.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import manage, percentiles, reset, setup, stop, write_result


def _wait_done(ids: list[uuid.UUID], timeout: float = 120.0) -> None:
    from jobs.models import Job

    deadline = time.monotonic() + timeout
    while Job.objects.filter(id__in=ids, finished_at__isnull=True).exists():
        if time.monotonic() > deadline:
            raise SystemExit("jobs did not finish in time: are the workers running?")
        time.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=100.0, help="jobs enqueued per second")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long the steady load lasts")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=5, help="slots per worker process")
    args = parser.parse_args()

    env = setup()
    from jobs.models import Job
    from jobs.services import enqueue_job

    reset()
    procs = [manage(env, "runscheduler")]
    procs += [manage(env, "runworker", "--concurrency", str(args.concurrency)) for _ in range(args.workers)]
    try:
        warmup = [enqueue_job("taskforge.noop").job.id for _ in range(50)]
        _wait_done(warmup)  # every worker is up, connected, and idle again
        time.sleep(1.0)  # idle: the measured jobs must wake the workers, not find them polling

        count = int(args.rate * args.seconds)
        sent: dict[uuid.UUID, tuple[float, float]] = {}
        start = time.perf_counter()
        late = 0
        for i in range(count):
            due = start + i / args.rate
            wait = due - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            else:
                late += 1
            before = time.time()
            job_id = enqueue_job("taskforge.noop").job.id
            sent[job_id] = (before, time.time())
        _wait_done(list(sent))
    finally:
        stop(procs)

    rows = Job.objects.filter(id__in=list(sent)).values_list("id", "started_at", "finished_at")
    to_start, to_finish, ack, ack_to_start = [], [], [], []
    for job_id, started_at, finished_at in rows:
        before, after = sent[job_id]
        to_start.append((started_at.timestamp() - before) * 1000)
        ack_to_start.append((started_at.timestamp() - after) * 1000)
        to_finish.append((finished_at.timestamp() - before) * 1000)
        ack.append((after - before) * 1000)
    result = {
        "rate": args.rate,
        "seconds": args.seconds,
        "jobs": len(rows),
        "workers": args.workers,
        "concurrency": args.concurrency,
        "enqueues_behind_schedule": late,
        "enqueue_call_ms": percentiles(ack),
        "enqueue_to_start_ms": percentiles(to_start),
        "acknowledged_to_start_ms": percentiles(ack_to_start),
        "enqueue_to_finished_ms": percentiles(to_finish),
    }
    names = ("enqueue_call_ms", "enqueue_to_start_ms", "acknowledged_to_start_ms", "enqueue_to_finished_ms")
    for name in names:
        figures = "  ".join(f"{k} {v:.2f}" for k, v in result[name].items())
        print(f"{name:<24} {figures}", flush=True)
    print(f"{len(rows)} jobs at {args.rate:g}/s; {late} enqueues started behind schedule", flush=True)
    write_result("latency", result)


if __name__ == "__main__":
    main()
