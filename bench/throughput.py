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
import json
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BENCH_REDIS_DB = "15"
HTTP_PORT = 8097


def bench_env() -> dict[str, str]:
    """The environment of every process of the run: its own Postgres database and Redis DB."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params = conninfo_to_dict(
        os.environ.get("POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/taskforge")
    )
    base_db = params.get("dbname", "taskforge")
    params["dbname"] = f"{base_db}_bench"
    _ensure_database(make_conninfo(**{**params, "dbname": "postgres"}), params["dbname"])
    return {
        **os.environ,
        "POSTGRES_DSN": make_conninfo(**params),
        "REDIS_DB": BENCH_REDIS_DB,
        "SECRET_KEY": os.environ.get("SECRET_KEY", "taskforge-bench"),
        "LOG_LEVEL": "warn",
        "HTTP_ADDR": f"127.0.0.1:{HTTP_PORT}",
        "DJANGO_SETTINGS_MODULE": "taskforge_site.settings",
    }


def _ensure_database(admin_dsn: str, name: str) -> None:
    import psycopg

    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def manage(env: dict[str, str], *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "manage.py", *args], cwd=ROOT, env=env)


def reset() -> None:
    from django.db import connection

    from workers import broker

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE job_events, dead_letters, jobs")
    broker.client().flushdb()


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


def _post(conn: http.client.HTTPConnection, path: str, body: Any) -> int:
    conn.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    response.read()
    return response.status


def enqueue_http(n: int, clients: int, batch: int | None) -> float:
    """POSTs from `clients` keep-alive connections in parallel; returns jobs/s."""
    per_client = n // clients
    errors: list[int] = []

    def run() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", HTTP_PORT, timeout=30)
        if batch:
            for offset in range(0, per_client, batch):
                body = {"jobs": [{"jobType": "taskforge.noop"}] * min(batch, per_client - offset)}
                if (status := _post(conn, "/jobs/batch", body)) != 201:
                    errors.append(status)
        else:
            for _ in range(per_client):
                if (status := _post(conn, "/jobs", {"jobType": "taskforge.noop"})) != 201:
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


def wait_http_ready() -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", HTTP_PORT, timeout=1)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("the API did not come up")


def drain(env: dict[str, str], workers: int, concurrency: int, total: int) -> dict[str, float]:
    """Starts the workers on the backlog and measures from the first claim to the last settle."""
    from django.db import connection

    procs = [manage(env, "runworker", "--concurrency", str(concurrency)) for _ in range(workers)]
    deadline = time.monotonic() + 600
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute("SELECT count(*) FROM jobs WHERE state = 'SUCCEEDED'")
            if cursor.fetchone()[0] >= total:
                break
            time.sleep(0.2)
        cursor.execute(
            "SELECT extract(epoch FROM max(finished_at) - min(started_at)),"
            " percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - started_at)),"
            " count(*) FROM jobs WHERE state = 'SUCCEEDED'"
        )
        seconds, p50_run, done = cursor.fetchone()
    rss = [_rss_mb(p.pid) for p in procs]
    for p in procs:
        p.terminate()
    for p in procs:
        p.wait(timeout=60)
    return {
        "processed": done,
        "seconds": round(float(seconds), 3),
        "jobs_per_sec": round(done / float(seconds), 1),
        "p50_claim_to_settle_ms": round(float(p50_run) * 1000, 2),
        "worker_rss_mb": rss,
    }


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=5, help="slots per worker process")
    parser.add_argument(
        "--enqueue", choices=["python", "batch", "http", "http-batch", "all"], default="all",
        help="how the drained backlog is enqueued; 'all' also measures every enqueue path",
    )  # fmt: skip
    parser.add_argument("--http-clients", type=int, default=4)
    args = parser.parse_args()

    env = bench_env()
    os.environ.update(env)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    import django

    django.setup()

    results: dict[str, Any] = {"jobs": args.jobs, "workers": args.workers, "concurrency": args.concurrency}
    api = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py"],
        cwd=ROOT,
        env={**env, "GUNICORN_WORKERS": "2"},
    )
    try:
        wait_http_ready()
        modes = ["python", "batch", "http", "http-batch"] if args.enqueue == "all" else [args.enqueue]
        enqueue_rates = {}
        for mode in modes:
            reset()
            n = args.jobs if mode in ("batch", "http-batch") else min(args.jobs, 5_000)
            rate = {
                "python": enqueue_python,
                "batch": enqueue_python_batch,
                "http": lambda count: enqueue_http(count, args.http_clients, None),
                "http-batch": lambda count: enqueue_http(count, args.http_clients, 1000),
            }[mode](n)
            enqueue_rates[mode] = round(rate, 1)
            print(f"enqueue {mode:<10} {n:>7} jobs  {rate:>9.0f} jobs/s", flush=True)
        results["enqueue_jobs_per_sec"] = enqueue_rates
    finally:
        api.terminate()
        api.wait(timeout=30)

    reset()
    enqueue_python_batch(args.jobs)
    processing = drain(env, args.workers, args.concurrency, args.jobs)
    results["processing"] = processing
    print(
        f"process {processing['processed']} jobs with {args.workers} workers x {args.concurrency} slots:"
        f" {processing['jobs_per_sec']:.0f} jobs/s"
        f" (p50 claim->settle {processing['p50_claim_to_settle_ms']} ms,"
        f" worker RSS {processing['worker_rss_mb']} MB)",
        flush=True,
    )
    results["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version()}
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"throughput-{time.strftime('%Y%m%dT%H%M%S')}.json"
    path.write_text(json.dumps(results, indent=2))
    print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
