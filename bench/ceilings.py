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
  `POST /jobs`.
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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import machine_busy_seconds, operator_token, reset, setup, start_api, stop, write_result
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


def one_by_one(rounds: int, count: int) -> dict[str, list[float]]:
    """ENQUEUE_ONE and the publish script on bare connections, against enqueue_job."""
    import psycopg
    from django.conf import settings
    from django.db import connection

    from jobs import sql
    from jobs.services import enqueue_job
    from workers import broker, keys

    pg = psycopg.connect(**connection.get_connection_params(), autocommit=True)  # prepares, as the app
    cursor = psycopg.Cursor(pg)  # server-side binding, binary results: as jobs.sql.fetch
    sha = broker.client().script_load(broker._PUBLISH_SCRIPT)
    redis = broker.client().connection_pool.get_connection()
    queue = settings.TASKFORGE.queue_name
    queue_keys = (keys.QUEUES, keys.queue_key(queue))

    def bare() -> None:
        for _ in range(count):
            row = sql.EnqueueRow(
                uuid.uuid4(),
                queue,
                "taskforge.noop",
                "{}",
                0,
                None,
                5,
                1000,
                2.0,
                60000,
                False,
                None,
                None,
                None,
                "",
            )
            cursor.execute(sql.ENQUEUE_ONE, row._asdict(), binary=True).fetchall()
            score = broker.ready_score(0, datetime.now(UTC))
            redis.send_command(
                "EVALSHA", sha, 2, *queue_keys, keys.WAKEUP_CHANNEL, 1, queue, 1, score, str(row.id)
            )
            redis.read_response()

    def taskforge() -> None:
        for _ in range(count):
            enqueue_job("taskforge.noop")

    return {
        "bare statement + publish": per_second(bare, count, rounds),
        "enqueue_job": per_second(taskforge, count, rounds),
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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--single-jobs", type=int, default=3000, help="jobs per round, one by one")
    parser.add_argument("--batch-jobs", type=int, default=20_000, help="jobs per round, in batches of 1,000")
    parser.add_argument("--seconds", type=float, default=8.0, help="wrk seconds per endpoint and round")
    args = parser.parse_args()

    env = setup()
    result = {}
    # Each on emptied tables, HTTP first: vacuuming what the batches wrote would load the CPU.
    for section, measure in (
        ("HTTP, requests/s (machine CPU per request)", lambda: http(env, args.rounds, args.seconds)),
        ("one by one, jobs/s", lambda: one_by_one(args.rounds, args.single_jobs)),
        ("batches of 1,000, jobs/s", lambda: batches(args.rounds, args.batch_jobs)),
    ):
        reset()
        result[section] = measure()
    for section, figures in result.items():
        print(section)
        for name, values in figures.items():
            shown = (
                f"{v:,.0f}"
                if isinstance(v, int)
                else f"{v['per_sec']:,.0f} ({v['machine_cpu_ms']} ms of CPU)"
                for v in values
            )
            print(f"  {name:40} {', '.join(shown)}")
    reset()
    write_result("ceilings", {"args": vars(args), **result})


if __name__ == "__main__":
    main()
