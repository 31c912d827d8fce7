"""Mixed workload: long jobs right behind a burst of short ones, shared by several workers.

    python bench/mixed.py --workers 2 --concurrency 2 --short 10000 --long 40 --seconds 0.5

Starts --workers idle `runworker` processes, then enqueues --short noop jobs followed by --long
`taskforge.sleep` jobs of --seconds each (last in the queue), so a worker's prefetch is sized by
the burst when it reaches them. Prints how long the long jobs took from the first start to the
last end against the ideal (rounds of --seconds over every slot), how many each worker ran,
and how many a worker gave back unstarted. It uses its own database and Redis database (see
bench/README.md) and writes the figures as JSON under bench/results/. Not a test: it asserts
nothing.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import manage, reset, setup, stop, write_result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--prefetch", type=int, default=None, help="fixed prefetch (default: adaptive)")
    parser.add_argument("--short", type=int, default=10_000, help="noop jobs in the burst")
    parser.add_argument("--long", type=int, default=40, help="long jobs behind the burst")
    parser.add_argument("--seconds", type=float, default=0.5, help="each long job's duration")
    args = parser.parse_args()

    env = setup()
    reset()
    from django.db.models import Max, Min

    from jobs.models import Job, JobEvent
    from jobs.services import JobSpec, enqueue_jobs
    from jobs.states import JobState
    from workers import broker

    flags = ["--concurrency", str(args.concurrency)]
    if args.prefetch is not None:
        flags += ["--prefetch", str(args.prefetch)]
    procs = [manage(env, "runworker", *flags) for _ in range(args.workers)]
    try:
        deadline = time.monotonic() + 60
        while len(broker.online_workers(max_age_seconds=60)) < args.workers:  # idle, ready
            if time.monotonic() > deadline:
                raise SystemExit("the workers did not come up")
            time.sleep(0.1)
        for offset in range(0, args.short, 1000):
            enqueue_jobs([JobSpec("taskforge.noop") for _ in range(min(1000, args.short - offset))])
        specs = [JobSpec("taskforge.sleep", {"seconds": args.seconds}) for _ in range(args.long)]
        long_ids = [r.job.id for r in enqueue_jobs(specs)]
        long_jobs = Job.objects.filter(id__in=long_ids)
        deadline = time.monotonic() + 600
        while long_jobs.filter(state=JobState.SUCCEEDED).count() < args.long:
            if time.monotonic() > deadline:
                raise SystemExit("the long jobs did not finish within 10 minutes")
            time.sleep(0.2)
    finally:
        stop(procs)
    span = long_jobs.aggregate(first=Min("started_at"), last=Max("finished_at"))
    seconds = (span["last"] - span["first"]).total_seconds()
    ideal = math.ceil(args.long / (args.workers * args.concurrency)) * args.seconds
    events = JobEvent.objects.filter(job_id__in=long_ids)
    ran = Counter(events.filter(type="succeeded").values_list("worker_id", flat=True))
    given_back = events.filter(type="released").count()
    result = {
        "args": vars(args),
        "long_jobs_seconds": round(seconds, 3),
        "ideal_seconds": ideal,
        "long_jobs_per_worker": sorted(ran.values(), reverse=True),
        "given_back": given_back,
    }
    print(
        f"{args.long} long jobs of {args.seconds:g} s behind {args.short:,} short ones, "
        f"{args.workers} workers x {args.concurrency} slots: {seconds:.2f} s (ideal {ideal:g} s); "
        f"ran per worker {result['long_jobs_per_worker']}; given back unstarted: {given_back}"
    )
    write_result("mixed", result)


if __name__ == "__main__":
    main()
