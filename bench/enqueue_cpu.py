"""Client CPU of an enqueue, in-process: what the Python API and the API view cost per job.

    python bench/enqueue_cpu.py --rounds 3

Three paths, each for --rounds rounds after a warm-up: `enqueue_jobs` in batches of 1,000,
`enqueue_job` one by one, and `POST /jobs/batch` of 1,000 jobs through Django's test client
(the view, validation, enqueue and rendering, without gunicorn or a socket). Prints jobs/s
and this process's CPU time per job (per request for the batch POST). CPU per job moves much
less than jobs/s on a shared machine, so it is the figure to compare two versions by: run
both, alternating. Uses its own database and Redis database (see bench/README.md) and writes
the figures as JSON under bench/results/. Not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import operator_token, reset, setup, write_result


def measure(run: Callable[[], None], count: int) -> dict[str, float]:
    """Wall and CPU time of run(), per unit of `count`."""
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"per_sec": round(count / wall, 1), "cpu_us": round(cpu / count * 1e6, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-jobs", type=int, default=20_000, help="jobs per round, in batches of 1,000")
    parser.add_argument("--single-jobs", type=int, default=2_000, help="jobs per round, one by one")
    parser.add_argument("--requests", type=int, default=10, help="POST /jobs/batch requests per round")
    args = parser.parse_args()

    setup()
    reset()
    from django.test import Client

    from jobs.services import JobSpec, enqueue_job, enqueue_jobs

    def batches(n: int) -> None:
        for offset in range(0, n, 1000):
            enqueue_jobs([JobSpec("taskforge.noop") for _ in range(min(1000, n - offset))])

    def singles(n: int) -> None:
        for _ in range(n):
            enqueue_job("taskforge.noop")

    client, token = Client(), operator_token()
    body = json.dumps({"jobs": [{"jobType": "taskforge.noop", "payload": {"n": i}} for i in range(1000)]})

    def posts(n: int) -> None:
        for _ in range(n):
            response = client.post(
                "/jobs/batch",
                body,
                content_type="application/json",
                HTTP_AUTHORIZATION=f"Token {token}",
                HTTP_HOST="localhost",
            )
            if response.status_code != 201:
                raise SystemExit(f"POST /jobs/batch answered {response.status_code}")

    # name, run, units per round, how CPU per unit is printed (divisor from µs, unit)
    paths = [
        ("enqueue_jobs, batches of 1,000", lambda: batches(args.batch_jobs), args.batch_jobs, 1, "µs/job"),
        ("enqueue_job, one by one", lambda: singles(args.single_jobs), args.single_jobs, 1, "µs/job"),
        ("POST /jobs/batch of 1,000", lambda: posts(args.requests), args.requests, 1000, "ms/request"),
    ]
    results: dict[str, list[dict[str, float]]] = {}
    for name, run, count, divisor, unit in paths:
        measure(run, count)  # warm-up: prepared statements, caches
        results[name] = [measure(run, count) for _ in range(args.rounds)]
        figures = ", ".join(f"{r['per_sec']:,.0f}/s at {r['cpu_us'] / divisor:.1f}" for r in results[name])
        print(f"{name:32} {figures} ({unit} of CPU)")
    write_result("enqueue-cpu", {"args": vars(args), "paths": results})


if __name__ == "__main__":
    main()
