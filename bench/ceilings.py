"""What the enqueue targets could reach on this machine at best, whatever TaskForge's own code does.

    python bench/ceilings.py --rounds 2 --seconds 8

Each ceiling is measured beside TaskForge's own figure, in the same run, on the bench database:
- one by one: the very statement an enqueue runs (ENQUEUE_ONE: the job and its `created`
  event, one autocommit) and the publish script, through bare psycopg and redis-py
  connections, without Django, validation or models; against `enqueue_job`;
- batches of 1,000: binary COPY of the jobs and their `created` events in one transaction (the
  cheapest way into the table, with its indexes and checks), of the jobs alone, and of the
  jobs into a copy of the table without indexes; against `enqueue_jobs`;
- HTTP: gunicorn as deployed (2 workers) under wrk with 8 connections: a plain Django view, an
  empty DRF view, the same with the API's authentication (bench/ceiling_urls.py), and
  `POST /jobs`;
- latency: enqueue→start at a steady --rate with the bare enqueue and a bare worker process
  (on each wake-up it pops one id with ZPOPMIN and reads the database clock, where a claim
  statement stamps `started_at`): the hops TaskForge's path is made of, nothing else; compare
  with bench/latency.py.
Prints jobs (or requests) per second per round; writes JSON under bench/results/. Not a test.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    machine_busy_seconds,
    operator_token,
    percentiles,
    reset,
    setup,
    start_api,
    stop,
    write_result,
)
from bench.http_load import run_wrk

# The columns a COPY fills (the rest take their defaults) and their types.
COPY_COLUMNS = {
    "id": "uuid",
    "queue": "text",
    "job_type": "text",
    "payload": "jsonb",
    "state": "text",
    "priority": "int2",
    "attempt_count": "int4",
    "max_attempts": "int4",
    "initial_delay_ms": "int4",
    "backoff": "float8",
    "max_delay_ms": "int4",
    "jitter": "bool",
    "run_at": "timestamptz",
    "queued_at": "timestamptz",
    "cancel_requested": "bool",
    "traceparent": "text",
    "created_at": "timestamptz",
    "updated_at": "timestamptz",
}


def per_second(run: Callable[[], None], units: int, rounds: int) -> list[float]:
    """Units per second of run(), once per round after one warm-up call."""
    run()
    figures = []
    for _ in range(rounds):
        start = time.perf_counter()
        run()
        figures.append(round(units / (time.perf_counter() - start)))
    return figures


def bare_enqueuer() -> Callable[[], uuid.UUID]:
    """An enqueue on bare connections: ENQUEUE_ONE, then the publish script; returns the id."""
    import psycopg
    from django.conf import settings
    from django.db import connection

    from jobs import sql
    from workers import broker, keys

    pg = psycopg.connect(**connection.get_connection_params(), autocommit=True)  # prepares, as the app
    cursor = psycopg.Cursor(pg)  # server-side binding, binary results: as jobs.sql.fetch
    sha = broker.client().script_load(broker._PUBLISH_SCRIPT)
    redis = broker.client().connection_pool.get_connection()
    queue = settings.TASKFORGE.queue_name
    defaults = (0, None, 5, 1000, 2.0, 60000, False, None, None, None, "")

    def enqueue() -> uuid.UUID:
        row = sql.EnqueueRow(uuid.uuid4(), queue, "taskforge.noop", "{}", *defaults)
        cursor.execute(sql.ENQUEUE_ONE, row._asdict(), binary=True).fetchall()
        score = broker.ready_score(0, datetime.now(UTC))
        redis.send_command(
            "EVALSHA",
            sha,
            2,
            keys.QUEUES,
            keys.queue_key(queue),
            keys.WAKEUP_CHANNEL,
            1,
            queue,
            1,
            score,
            str(row.id),
        )
        redis.read_response()
        return row.id

    return enqueue


def one_by_one(rounds: int, count: int) -> dict[str, list[float]]:
    """The bare enqueue against enqueue_job."""
    from jobs.services import enqueue_job

    bare = bare_enqueuer()
    return {
        "bare statement + publish": per_second(lambda: [bare() for _ in range(count)], count, rounds),
        "enqueue_job": per_second(
            lambda: [enqueue_job("taskforge.noop") for _ in range(count)], count, rounds
        ),
    }


def _bare_worker(ready: Connection, count: int) -> None:
    """A worker's hops on bare connections: on each wake-up pop the ids, then a claim's clock.

    Sends back {job id: the database clock at the start of its "claim" statement}.
    """
    import psycopg
    from django.conf import settings
    from django.db import connection

    from workers import broker, keys

    pg = psycopg.connect(**connection.get_connection_params(), autocommit=True)
    redis = broker._make_client(socket_timeout=None)
    wakeups = redis.pubsub(ignore_subscribe_messages=True)
    wakeups.subscribe(keys.WAKEUP_CHANNEL)
    queue = keys.queue_key(settings.TASKFORGE.queue_name)
    started: dict[str, float] = {}
    ready.send(True)
    while len(started) < count:
        wakeups.get_message(timeout=1.0)  # a wake-up, or a second without one
        for job_id, _score in redis.zpopmin(queue, 100):
            (started[job_id],) = pg.execute("SELECT extract(epoch FROM now())::float8").fetchone()
    ready.send(started)


def latency(rate: float, count: int) -> dict[str, dict[str, float]]:
    """Enqueue→start of the bare enqueue and worker at a steady rate: the hops, no TaskForge."""
    import multiprocessing

    from django.db import connections

    bare = bare_enqueuer()
    connections.close_all()  # the child opens its own
    ours, theirs = multiprocessing.Pipe()
    worker = multiprocessing.get_context("fork").Process(target=_bare_worker, args=(theirs, count))
    worker.start()
    ours.recv()
    sent = {}
    start = time.perf_counter()
    for i in range(count):
        time.sleep(max(0.0, start + i / rate - time.perf_counter()))
        before = time.time()
        sent[str(bare())] = before
    started = ours.recv()
    worker.join()
    return {
        "bare enqueue→start, ms": percentiles([(started[job_id] - at) * 1000 for job_id, at in sent.items()])
    }


def batches(rounds: int, count: int) -> dict[str, list[float]]:
    """Binary COPY of 1,000 jobs (with events, alone, without indexes), against enqueue_jobs."""
    import psycopg
    from django.db import connection

    from jobs.services import JobSpec, enqueue_jobs

    pg = psycopg.connect(**connection.get_connection_params())
    pg.execute(
        "CREATE TABLE IF NOT EXISTS bench_jobs_bare (LIKE jobs INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
    )
    pg.commit()
    columns = ", ".join(COPY_COLUMNS)

    def copy(table: str, events: bool) -> Callable[[], None]:
        def run() -> None:
            for _ in range(count // 1000):
                with pg.transaction():
                    (now,) = pg.execute("SELECT now()").fetchone()
                    ids = [uuid.uuid4() for _ in range(1000)]
                    with pg.cursor().copy(f"COPY {table} ({columns}) FROM STDIN (FORMAT BINARY)") as rows:
                        rows.set_types(list(COPY_COLUMNS.values()))
                        for job_id in ids:
                            rows.write_row(
                                (
                                    job_id,
                                    "default",
                                    "taskforge.noop",
                                    "{}",
                                    "QUEUED",
                                    0,
                                    0,
                                    5,
                                    1000,
                                    2.0,
                                    60000,
                                    False,
                                    now,
                                    now,
                                    False,
                                    "",
                                    now,
                                    now,
                                )
                            )
                    if events:
                        copy_sql = (
                            "COPY job_events (job_id, type, at, attempt, details) FROM STDIN (FORMAT BINARY)"
                        )
                        with pg.cursor().copy(copy_sql) as rows:
                            rows.set_types(["uuid", "text", "timestamptz", "int4", "jsonb"])
                            for job_id in ids:
                                rows.write_row((job_id, "created", now, 0, '{"state": "QUEUED"}'))

        return run

    def taskforge() -> None:
        for _ in range(count // 1000):
            enqueue_jobs([JobSpec("taskforge.noop") for _ in range(1000)])

    figures = {
        "COPY jobs + created events": per_second(copy("jobs", True), count, rounds),
        "COPY jobs alone": per_second(copy("jobs", False), count, rounds),
        "COPY jobs into a table without indexes": per_second(copy("bench_jobs_bare", False), count, rounds),
        "enqueue_jobs": per_second(taskforge, count, rounds),
    }
    pg.execute("DROP TABLE bench_jobs_bare")
    pg.commit()
    return figures


def http(env: dict[str, str], rounds: int, seconds: float) -> dict[str, list[dict[str, float]]]:
    """Requests/s of each endpoint under wrk (8 connections, 2 gunicorn workers), and CPU.

    CPU per request is the whole machine's busy time (gunicorn, Postgres, Redis and wrk) over
    the requests: with 2 CPUs, 800 requests/s leave at most 2.5 ms per request for everything.
    """
    token = operator_token()
    body = json.dumps({"jobType": "taskforge.noop", "payload": {"n": 1}})
    api = start_api({**env, "DJANGO_SETTINGS_MODULE": "bench.ceiling_settings"})
    figures: dict[str, list[dict[str, float]]] = {}
    try:
        for path in ("/ceiling/django", "/ceiling/drf", "/ceiling/drf-auth", "/jobs"):
            run_wrk(path, body, token, 2, 8, 2)  # warm-up
            for _ in range(rounds):
                busy = machine_busy_seconds()
                summary = run_wrk(path, body, token, seconds, 8, 2)
                busy = machine_busy_seconds() - busy
                if summary["non_2xx"] or summary["timeouts"]:
                    raise SystemExit(f"{path}: {summary}")
                figures.setdefault(path, []).append(
                    {
                        "per_sec": round(summary["requests"] / summary["duration_us"] * 1e6),
                        "machine_cpu_ms": round(busy / summary["requests"] * 1000, 2),
                    }
                )
    finally:
        stop([api])
    return figures


def _shown(values: list | dict) -> str:
    if isinstance(values, dict):  # percentiles
        return "  ".join(f"{point} {ms:.2f}" for point, ms in values.items())
    return ", ".join(
        f"{v:,.0f}" if isinstance(v, int) else f"{v['per_sec']:,.0f} ({v['machine_cpu_ms']} ms of CPU)"
        for v in values
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--sections", default="http,single,batch,latency", help="which, in this order")
    parser.add_argument("--single-jobs", type=int, default=3000, help="jobs per round, one by one")
    parser.add_argument("--batch-jobs", type=int, default=20_000, help="jobs per round, in batches of 1,000")
    parser.add_argument("--seconds", type=float, default=8.0, help="wrk seconds per endpoint and round")
    parser.add_argument("--rate", type=float, default=100.0, help="jobs per second of the latency run")
    parser.add_argument("--latency-jobs", type=int, default=2000, help="jobs of the latency run")
    args = parser.parse_args()

    env = setup()
    sections = {
        "http": ("HTTP, requests/s (machine CPU per request)", lambda: http(env, args.rounds, args.seconds)),
        "single": ("one by one, jobs/s", lambda: one_by_one(args.rounds, args.single_jobs)),
        "batch": ("batches of 1,000, jobs/s", lambda: batches(args.rounds, args.batch_jobs)),
        "latency": (f"latency at {args.rate:g} jobs/s", lambda: latency(args.rate, args.latency_jobs)),
    }
    result = {}
    # Each on emptied tables, HTTP first: vacuuming what the batches wrote would load the CPU.
    for key in args.sections.split(","):
        reset()
        title, measure = sections[key]
        result[title] = measure()
    for section, figures in result.items():
        print(section)
        for name, values in figures.items():
            print(f"  {name:40} {_shown(values)}")
    write_result("ceilings", {"args": vars(args), **result})


if __name__ == "__main__":
    main()
