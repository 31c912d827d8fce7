"""The floor the machine sets: one round trip to Postgres and to Redis, idle and busy.

    python bench/roundtrip.py --rate 100 --count 2000

Times the smallest exchanges TaskForge's hot path is made of, on the bench database and
Redis DB: Postgres `SELECT 1`, a one-row INSERT with its commit (a WAL flush), and Redis
PING, each first at a steady --rate per second (the servers and CPUs go idle between calls,
as at the latency benchmark's 100 jobs/s) and then back to back. An enqueue is two round trips
and the worker's pick-up two more, so these bound enqueue→start latency and one-by-one enqueue
rates from below. Prints percentiles in milliseconds; writes JSON under bench/results/.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import percentiles, setup, write_result


def timed(call: Callable[[], object], count: int, rate: float | None) -> dict[str, float]:
    """Percentiles of `count` calls, paced at `rate` per second (None: back to back)."""
    samples = []
    start = time.perf_counter()
    for i in range(count):
        if rate:
            wait = start + i / rate - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
        before = time.perf_counter()
        call()
        samples.append((time.perf_counter() - before) * 1000)
    return percentiles(samples)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=100.0, help="calls per second when paced")
    parser.add_argument("--count", type=int, default=2000, help="calls per measurement")
    args = parser.parse_args()

    setup()
    import psycopg
    from django.db import connection

    from workers import broker

    pg = psycopg.connect(**connection.get_connection_params(), autocommit=True)
    # A plain table: a transaction that only wrote a temporary one commits without a WAL flush.
    pg.execute("CREATE TABLE IF NOT EXISTS bench_roundtrip (n int)")
    redis = broker.client()
    calls: dict[str, Callable[[], object]] = {
        "postgres SELECT 1": lambda: pg.execute("SELECT 1").fetchone(),
        "postgres INSERT + COMMIT": lambda: pg.execute("INSERT INTO bench_roundtrip VALUES (1)"),
        "redis PING": redis.ping,
    }
    result: dict[str, dict[str, dict[str, float]]] = {}
    for name, call in calls.items():
        timed(call, 100, None)  # warm-up: connections open, statements cached
        result[name] = {
            f"at {args.rate:g}/s": timed(call, args.count, args.rate),
            "back to back": timed(call, args.count, None),
        }
        for mode, figures in result[name].items():
            line = "  ".join(f"{k} {v:.3f}" for k, v in figures.items())
            print(f"{name:<26} {mode:<13} ms: {line}", flush=True)
    pg.execute("DROP TABLE bench_roundtrip")
    pg.close()
    write_result("roundtrip", {"rate": args.rate, "count": args.count, "ms": result})


if __name__ == "__main__":
    main()
