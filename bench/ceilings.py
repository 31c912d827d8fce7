"""What the enqueue targets could reach on this machine at best, whatever TaskForge's own code does.

    python bench/ceilings.py --rounds 2 --seconds 8

Each ceiling but latency is measured beside TaskForge's own figure in the same run, each variant
on emptied tables of the bench database:
- one by one: the very statement an enqueue runs (ENQUEUE_ONE: the job and its `created`
  event, one autocommit) and the publish script, through bare psycopg and redis-py
  connections, without Django, validation or models; against `enqueue_job`;
- batches of 1,000: binary COPY of the jobs and their `created` events in one transaction (the
  cheapest way into the table, with its indexes and checks), of the jobs alone, and of the
  jobs into a copy of the table without indexes, Postgres only; against `enqueue_jobs`, which
  also validates, returns the jobs and publishes them;
- HTTP: gunicorn as deployed (2 workers) under wrk with 8 connections: a plain Django view, an
  empty DRF view, the same with the API's token authentication (bench/ceiling_urls.py; its
  permission is IsAuthenticated, the API's role check reads what that statement returned),
  and `POST /jobs`;
- latency: enqueue→start at a steady --rate with the bare enqueue and a bare worker process
  (on each wake-up it pops what is ready with ZPOPMIN and reads the database clock once, where
  a claim statement stamps `started_at`): the hops TaskForge's path is made of, nothing else; run
  bench/latency.py right after to compare.
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


def per_second(
    run: Callable[[], None], units: int, rounds: int, prepare: Callable[[], None] = reset
) -> list[float]:
    """Units per second of run(), once per round after one warm-up call.

    prepare() empties the tables first, so no variant runs against what the one before wrote.
    """
    prepare()
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


def _bare_worker(ready: Connection, count: int, rate: float) -> None:
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
    deadline = time.monotonic() + count / rate + 60
    while len(started) < count and time.monotonic() < deadline:
        wakeups.get_message(timeout=1.0)  # a wake-up, or a second without one
        popped = redis.zpopmin(queue, 100)
        if popped:  # one clock for the lot, as one claim statement stamps them all
            (now,) = pg.execute("SELECT extract(epoch FROM now())::float8").fetchone()
            started.update((job_id, now) for job_id, _score in popped)
    ready.send(started)


def latency(rate: float, count: int) -> dict[str, dict[str, float]]:
    """Enqueue→start of the bare enqueue and worker at a steady rate: the hops, no TaskForge.

    The first tenth warms up (connections, prepared statement) and is left out.
    """
    import multiprocessing

    from django.db import connections

    bare = bare_enqueuer()
    connections.close_all()  # the child opens its own
    ours, theirs = multiprocessing.Pipe()
    context = multiprocessing.get_context("fork")
    worker = context.Process(target=_bare_worker, args=(theirs, count, rate), daemon=True)
    worker.start()
    theirs.close()  # so a dead worker reads as EOF here, not as a wait forever
    ours.recv()
    sent = {}
    start = time.perf_counter()
    for i in range(count):
        time.sleep(max(0.0, start + i / rate - time.perf_counter()))
        before = time.time()
        sent[str(bare())] = before
    if not ours.poll(60):
        raise SystemExit("the bare worker did not report: did it pop every job?")
    started = ours.recv()
    worker.join()
    missing = len(sent) - len(started)
    if missing:
        raise SystemExit(f"the bare worker never saw {missing} jobs")
    measured = list(sent.items())[count // 10 :]
    return {"bare enqueue→start, ms": percentiles([(started[job_id] - at) * 1000 for job_id, at in measured])}


def batches(rounds: int, count: int) -> dict[str, list[float]]:
    """Binary COPY of 1,000 jobs (with events, alone, without indexes), against enqueue_jobs."""
    import psycopg
    from django.conf import settings
    from django.db import connection

    from jobs.services import JobSpec, enqueue_jobs

    pg = psycopg.connect(**connection.get_connection_params())
    pg.execute("DROP TABLE IF EXISTS bench_jobs_bare")
    pg.execute("CREATE TABLE bench_jobs_bare (LIKE jobs INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
    pg.commit()
    columns = ", ".join(COPY_COLUMNS)
    copy_events = "COPY job_events (job_id, type, at, attempt, details) FROM STDIN (FORMAT BINARY)"
    # A noop job as enqueue_jobs stores it, in COPY_COLUMNS' order from `queue` to `jitter`.
    job = (settings.TASKFORGE.queue_name, "taskforge.noop", {}, "QUEUED", 0, 0, 5, 1000, 2.0, 60000, False)

    def copy(table: str, events: bool) -> Callable[[], None]:
        def run() -> None:
            for _ in range(count // 1000):
                with pg.transaction():
                    (now,) = pg.execute("SELECT now()").fetchone()  # what the defaults would say
                    ids = [uuid.uuid4() for _ in range(1000)]
                    with pg.cursor().copy(f"COPY {table} ({columns}) FROM STDIN (FORMAT BINARY)") as rows:
                        rows.set_types(list(COPY_COLUMNS.values()))
                        for job_id in ids:
                            rows.write_row((job_id, *job, now, now, False, "", now, now))
                    if events:
                        with pg.cursor().copy(copy_events) as rows:
                            rows.set_types(["uuid", "text", "timestamptz", "int4", "jsonb"])
                            for job_id in ids:
                                rows.write_row((job_id, "created", now, 0, {"state": "QUEUED"}))

        return run

    def taskforge() -> None:
        for _ in range(count // 1000):
            enqueue_jobs([JobSpec("taskforge.noop") for _ in range(1000)])

    def empty_bare_table() -> None:
        reset()
        pg.execute("TRUNCATE bench_jobs_bare")
        pg.commit()

    try:
        return {
            "COPY jobs + created events (Postgres only)": per_second(copy("jobs", True), count, rounds),
            "COPY jobs alone (Postgres only)": per_second(copy("jobs", False), count, rounds),
            "COPY jobs, table without indexes": per_second(
                copy("bench_jobs_bare", False), count, rounds, prepare=empty_bare_table
            ),
            "enqueue_jobs (also publishes)": per_second(taskforge, count, rounds),
        }
    finally:
        pg.rollback()
        pg.execute("DROP TABLE bench_jobs_bare")
        pg.commit()
        pg.close()


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
                failed = ("non_2xx", "timeouts", "connect_errors", "read_errors", "write_errors")
                if any(summary[key] for key in failed):
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
