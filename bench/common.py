"""What every benchmark shares: its own database and Redis DB, processes, counters, results.

Each script runs against `<POSTGRES_DSN's database>_bench` and Redis DB 15 (both emptied
first), so a benchmark never touches the data of a running TaskForge or of the tests.
"""

from __future__ import annotations

import http.client
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
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


def setup() -> dict[str, str]:
    """Points this process at the bench database (migrated) and sets Django up; returns the env."""
    env = bench_env()
    os.environ.update(env)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    import django

    django.setup()
    return env


def manage(env: dict[str, str], *args: str) -> subprocess.Popen:
    """A `manage.py` process (runworker, runscheduler) of the run."""
    return subprocess.Popen([sys.executable, "manage.py", *args], cwd=ROOT, env=env)


def start_api(env: dict[str, str], workers: int = 2) -> subprocess.Popen:
    """gunicorn as deployed (gunicorn.conf.py), on HTTP_PORT, once it answers /healthz."""
    api = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py"],
        cwd=ROOT,
        env={**env, "GUNICORN_WORKERS": str(workers)},
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", HTTP_PORT, timeout=1)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return api
        except OSError:
            time.sleep(0.1)
    api.kill()
    raise SystemExit("the API did not come up")


def stop(procs: list[subprocess.Popen]) -> None:
    """SIGTERM, then wait: workers finish and settle what they hold."""
    for proc in procs:
        proc.terminate()
    for proc in procs:
        proc.wait(timeout=60)


def reset() -> None:
    """Empties the bench database's jobs and the bench Redis DB."""
    from django.db import connection

    from workers import broker

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE job_events, dead_letters, jobs")
    broker.client().flushdb()


def operator_token() -> str:
    """An operator's API token (the API authenticates every call, as deployed)."""
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    from jobs.roles import grant_role

    user, _ = get_user_model().objects.get_or_create(username="bench")
    grant_role(user, "operator")
    return Token.objects.get_or_create(user=user)[0].key


def rss_mb(pid: int) -> float:
    """Resident memory of one process, in MiB (0 once it has exited)."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except FileNotFoundError:
        return 0.0
    return next((round(int(line.split()[1]) / 1024, 1) for line in lines if line.startswith("VmRSS:")), 0.0)


def children_rss_mb(pid: int) -> list[float]:
    """RSS of a process's children (gunicorn's workers), in MiB."""
    return [rss_mb(child) for child in children_pids(pid)]


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time the processes have used so far (exited ones count 0)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU time the whole machine has spent busy (all CPUs, steal excluded), from /proc/stat.

    On a shared virtual machine throughput swings with the neighbours; CPU per request does
    much less, so the benchmarks report both.
    """
    user, nice, system, _idle, _iowait, irq, softirq = map(int, Path("/proc/stat").read_text().split()[1:8])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def children_pids(pid: int) -> list[int]:
    """A process's children (gunicorn's workers)."""
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(child) for child in out.split()]


@dataclass(frozen=True)
class PgCounters:
    """Postgres' cumulative counters at one moment: commits, WAL position, statements."""

    commits: int
    wal_lsn: str
    statements: int | None  # None: pg_stat_statements is not loaded

    @classmethod
    def now(cls) -> PgCounters:
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_stat_clear_snapshot()")
            cursor.execute(
                "SELECT xact_commit, pg_current_wal_lsn()::text FROM pg_stat_database"
                " WHERE datname = current_database()"
            )
            commits, lsn = cursor.fetchone()
            statements = None
            cursor.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements'")
            if cursor.fetchone():
                cursor.execute(
                    "SELECT coalesce(sum(s.calls), 0) FROM pg_stat_statements s"
                    " JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = current_database()"
                )
                statements = int(cursor.fetchone()[0])
        return cls(commits, lsn, statements)

    def per_job_since(self, before: PgCounters, jobs: int) -> dict[str, Any]:
        """Commits, WAL bytes and statements per job between two snapshots (all sessions)."""
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_wal_lsn_diff(%s::pg_lsn, %s::pg_lsn)", [self.wal_lsn, before.wal_lsn])
            wal_bytes = int(cursor.fetchone()[0])
        statements = (
            None
            if self.statements is None or before.statements is None
            else round((self.statements - before.statements) / jobs, 3)
        )
        return {
            "commits_per_job": round((self.commits - before.commits) / jobs, 3),
            "wal_bytes_per_job": round(wal_bytes / jobs, 1),
            "statements_per_job": statements,
        }


def enable_statement_counts() -> bool:
    """Creates pg_stat_statements in the bench database when the server preloads it; resets it."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW shared_preload_libraries")
        if "pg_stat_statements" not in cursor.fetchone()[0]:
            return False
        cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        cursor.execute("SELECT pg_stat_statements_reset()")
    return True


def percentiles(values: list[float], points: tuple[float, ...] = (50, 90, 99, 99.9)) -> dict[str, float]:
    """Nearest-rank percentiles of `values` (milliseconds in, milliseconds out), plus the max."""
    ordered = sorted(values)
    out = {
        f"p{point:g}": round(ordered[min(len(ordered) - 1, int(len(ordered) * point / 100))], 3)
        for point in points
    }
    out["max"] = round(ordered[-1], 3)
    return out


def write_result(name: str, result: dict[str, Any]) -> Path:
    """bench/results/<name>-<time>.json, with the machine it ran on."""
    result = {
        **result,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        },
    }
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}-{time.strftime('%Y%m%dT%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=2))
    print(f"wrote {path.relative_to(ROOT)}", flush=True)
    return path
