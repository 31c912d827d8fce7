"""Throughput benchmark: enqueue N noop jobs, then drain them with K worker processes.

    python bench/throughput.py --jobs 20000 --workers 2 --concurrency 5 --enqueue batch

Prints enqueue jobs/s (Python API one by one, Python API in batches, HTTP one by one, HTTP
batch) and processing jobs/s, and writes the figures as JSON under bench/results/. It uses
its own database (the POSTGRES_DSN database name + "_bench") and Redis database 15, and
empties both first. Not a test: it asserts nothing and only reports what it measured.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    HTTP_PORT,
    PgCounters,
    enable_statement_counts,
    manage,
    operator_token,
    reset,
    rss_mb,
    setup,
    start_api,
    stop,
    write_result,
)


def enqueue_python(n: int) -> float:
    from jobs.services import enqueue_job

    started = time.perf_counter()
    for _ in range(n):
        enqueue_job("taskforge.noop")
    return n / (time.perf_counter() - started)


def enqueue_python_batch(n: int, size: int = 1000) -> float:
    from jobs.services import JobSpec, enqueue_jobs

    started = time.perf_counter()
    for offset in range(0, n, size):
        enqueue_jobs([JobSpec("taskforge.noop") for _ in range(min(size, n - offset))])
    return n / (time.perf_counter() - started)


def _post(conn: http.client.HTTPConnection, path: str, body: Any, token: str) -> int:
    headers = {"Content-Type": "application/json", "Authorization": f"Token {token}"}
    conn.request("POST", path, body=json.dumps(body), headers=headers)
    response = conn.getresponse()
    response.read()
    return response.status


def enqueue_http(n: int, clients: int, batch: int | None, token: str) -> float:
    """POSTs from `clients` keep-alive connections in parallel; returns jobs/s."""
    per_client = n // clients
    errors: list[int] = []

    def run() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", HTTP_PORT, timeout=30)
        if batch:
            for offset in range(0, per_client, batch):
                body = {"jobs": [{"jobType": "taskforge.noop"}] * min(batch, per_client - offset)}
                if (status := _post(conn, "/jobs/batch", body, token)) != 201:
                    errors.append(status)
        else:
            for _ in range(per_client):
                if (status := _post(conn, "/jobs", {"jobType": "taskforge.noop"}, token)) != 201:
                    errors.append(status)
        conn.close()

    threads = [threading.Thread(target=run) for _ in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise SystemExit(f"{len(errors)} requests failed, e.g. HTTP {errors[0]}")
    return per_client * clients / elapsed


def _succeeded_so_far() -> int:
    """Jobs the workers settled as succeeded, from their per-minute counters in Redis.

    A count(*) on the jobs table every half second cost Postgres 50 - 100 ms each at 100,000 -
    200,000 rows, a tenth of the CPU the run measures. The counters lag by up to a second and a
    worker killed before its flush loses some, so Postgres confirms the end, and is asked every
    5 s regardless.
    """
    from workers import broker

    return sum(n for (_, outcome), n in broker.throughput(60).items() if outcome == "succeeded")


def drain(env: dict[str, str], workers: int, concurrency: int, total: int) -> dict[str, Any]:
    """Starts a scheduler and the workers on the backlog; measures from first claim to last settle."""
    from django.db import connection

    before = PgCounters.now()
    procs = [manage(env, "runscheduler")]
    procs += [manage(env, "runworker", "--concurrency", str(concurrency)) for _ in range(workers)]
    rss: dict[int, list[float]] = {p.pid: [] for p in procs}
    deadline = time.monotonic() + 1800
    with connection.cursor() as cursor:
        for poll in itertools.count(1):
            if time.monotonic() > deadline:
                raise SystemExit("the jobs did not finish in 30 minutes")
            done = _succeeded_so_far()
            if done:  # memory once every process is at work, until the end
                for pid, samples in rss.items():
                    samples.append(rss_mb(pid))
            if done >= total or poll % 10 == 0:  # the counters are a hint; Postgres decides
                cursor.execute("SELECT count(*) FROM jobs WHERE state = 'SUCCEEDED'")
                if cursor.fetchone()[0] >= total:
                    break
            time.sleep(0.5)
        cursor.execute(
            "SELECT extract(epoch FROM max(finished_at) - min(started_at)),"
            " percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - started_at)),"
            " count(*) FROM jobs WHERE state = 'SUCCEEDED'"
        )
        seconds, p50_run, done = cursor.fetchone()
    cost = PgCounters.now().per_job_since(before, done)
    stop(procs)
    scheduler, *workers_rss = (rss[p.pid] for p in procs)
    return {
        "processed": done,
        "seconds": round(float(seconds), 3),
        "jobs_per_sec": round(done / float(seconds), 1),
        "p50_claim_to_settle_ms": round(float(p50_run) * 1000, 2),
        "worker_rss_mb": [max(samples) for samples in workers_rss],
        # First, quarter-way, half-way, three-quarter and last samples: warm-up vs growth.
        "scheduler_rss_mb": {
            "at_first_job": scheduler[0],
            "by_quarter": [scheduler[(len(scheduler) - 1) * q // 4] for q in range(1, 4)],
            "at_last_job": scheduler[-1],
        },
        "cost": cost,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=5, help="slots per worker process")
    parser.add_argument(
        "--enqueue", choices=["python", "batch", "http", "http-batch", "all"], default="batch",
        help="how the backlog is enqueued (and measured); 'all' measures every path first",
    )  # fmt: skip
    parser.add_argument("--http-clients", type=int, default=4)
    args = parser.parse_args()

    env = setup()
    statements = enable_statement_counts()
    token = operator_token()
    results: dict[str, Any] = {"jobs": args.jobs, "workers": args.workers, "concurrency": args.concurrency}
    enqueuers = {
        "python": enqueue_python,
        "batch": enqueue_python_batch,
        "http": lambda count: enqueue_http(count, args.http_clients, None, token),
        "http-batch": lambda count: enqueue_http(count, args.http_clients, 1000, token),
    }
    modes = list(enqueuers) if args.enqueue == "all" else [args.enqueue]
    api = start_api(env, 2) if {"http", "http-batch"} & set(modes) else None
    try:
        rates = {}
        for mode in modes:
            reset()
            rates[mode] = round(enqueuers[mode](args.jobs), 1)
            print(f"enqueue {mode:<10} {args.jobs:>7} jobs  {rates[mode]:>9,.0f} jobs/s", flush=True)
        results["enqueue_jobs_per_sec"] = rates
    finally:
        if api is not None:
            stop([api])

    processing = drain(env, args.workers, args.concurrency, args.jobs)
    results["processing"] = processing
    print(
        f"process {processing['processed']} jobs with {args.workers} workers x {args.concurrency} slots:"
        f" {processing['jobs_per_sec']:,.0f} jobs/s"
        f" (p50 claim->settle {processing['p50_claim_to_settle_ms']} ms,"
        f" worker RSS {processing['worker_rss_mb']} MB, scheduler RSS {processing['scheduler_rss_mb']} MB)",
        flush=True,
    )
    cost = processing["cost"]
    if not statements:
        cost["statements_per_job"] = "n/a: the server does not preload pg_stat_statements"
    print(f"postgres per processed job: {cost}", flush=True)
    write_result("throughput", results)


if __name__ == "__main__":
    main()
