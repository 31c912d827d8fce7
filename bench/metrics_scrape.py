"""Read cost: times GET /metrics (or GET /stats) with a big history of finished jobs in the table.

    python bench/metrics_scrape.py --rows 1000000 --scrapes 50
    python bench/metrics_scrape.py --rows 1000000 --scrapes 50 --path /stats

Fills the bench database (the POSTGRES_DSN database name + "_bench", emptied first, as
bench/throughput.py does) with `--rows` SUCCEEDED jobs in one INSERT ... SELECT generate_series,
plus a small live backlog (QUEUED, RETRYING, DLQ), then scrapes /metrics in-process and prints
the median and worst time and the plan of every query a scrape runs. Not a test: it only
reports.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import operator_token, setup

FILL = """
INSERT INTO jobs (id, queue, job_type, payload, state, priority, attempt_count, max_attempts,
                  initial_delay_ms, backoff, max_delay_ms, jitter, queued_at, cancel_requested,
                  traceparent, created_at, updated_at, started_at, finished_at, next_run_at)
SELECT gen_random_uuid(), 'q' || (n %% 4), 'taskforge.noop', '{}', %(state)s::text, 0,
       CASE WHEN %(state)s::text = 'QUEUED' THEN 0 ELSE 1 END, 5, 1000, 2.0, 60000, false, now(), false,
       '', now(), now(), now(), CASE WHEN %(state)s::text IN ('SUCCEEDED', 'DLQ') THEN now() END,
       CASE WHEN %(state)s::text = 'RETRYING' THEN now() + interval '1 hour' END
FROM generate_series(1, %(n)s) AS n
"""

DEAD_LETTERS = """
INSERT INTO dead_letters (job_id, queue, job_type, payload, reason, last_error, attempts, failed_at,
                          created_at, updated_at)
SELECT id, queue, job_type, payload, 'attempts exhausted', 'boom', 5, now(), now(), now()
FROM jobs WHERE state = 'DLQ'
"""


def fill(rows: int) -> None:
    import psycopg
    from django.db import connection

    from scheduler.services import refresh_finished_counts
    from workers import broker

    dsn = os.environ["POSTGRES_DSN"]
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("TRUNCATE job_events, dead_letters, jobs")
        broker.client().flushdb()
        started = time.perf_counter()
        for state, n in (("SUCCEEDED", rows), ("QUEUED", 2000), ("RETRYING", 500), ("DLQ", 300)):
            conn.execute(FILL, {"state": state, "n": n})
        conn.execute(DEAD_LETTERS)
        conn.execute("VACUUM ANALYZE jobs")
        conn.execute("VACUUM ANALYZE dead_letters")
        print(f"filled {rows} SUCCEEDED + 2800 live jobs in {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    refresh_finished_counts()  # the scheduler's once-a-minute count; not part of a scrape
    print(f"the scheduler's count of finished jobs took {time.perf_counter() - started:.2f} s")
    connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--scrapes", type=int, default=50)
    parser.add_argument("--path", choices=["/metrics", "/stats"], default="/metrics")
    args = parser.parse_args()

    setup()
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    fill(args.rows)
    client = Client(HTTP_HOST="localhost", headers={"Authorization": f"Token {operator_token()}"})
    client.get(args.path)  # warm: connection, prepared plans, imports
    times = []
    for _ in range(args.scrapes):
        started = time.perf_counter()
        response = client.get(args.path)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200
    print(
        f"GET {args.path} with {args.rows} SUCCEEDED rows: median {statistics.median(times):.1f} ms,"
        f" worst {max(times):.1f} ms over {args.scrapes} reads"
    )
    with CaptureQueriesContext(connection) as scrape:  # what one read asks Postgres, with plans
        client.get(args.path)
    with connection.cursor() as cursor:
        for query in scrape.captured_queries:
            if query["sql"].startswith("SELECT"):
                cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {query['sql']}")
                print("\n".join(row[0] for row in cursor.fetchall()), end="\n\n")


if __name__ == "__main__":
    main()
