"""HTTP enqueue under load: wrk against gunicorn, with token auth as deployed.

    python bench/http_load.py --seconds 20 --connections 8 --gunicorn-workers 2

Starts the API (gunicorn.conf.py, --gunicorn-workers processes) on the bench database, then
runs the `wrk` load generator (Debian/Ubuntu: `apt-get install wrk`) for --seconds against
`POST /jobs` (one job per request) and against `POST /jobs/batch` (--batch jobs per request),
each with an operator's token. Each phase is --segments wrk runs back to back. Prints
requests/s, jobs/s, latency percentiles and errors as wrk counted them, the jobs Postgres
holds afterwards, and the gunicorn workers' memory after warm-up and after each segment
(flat memory shows as a plateau). Writes JSON under bench/results/. No
worker runs: the jobs stay QUEUED, so only the API and its commits are measured.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    HTTP_PORT,
    children_pids,
    children_rss_mb,
    cpu_seconds,
    machine_busy_seconds,
    operator_token,
    reset,
    setup,
    start_api,
    stop,
    write_result,
)

# wrk's Lua hooks: the request, and a JSON summary from its own counters at the end.
WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Token %(token)s"
wrk.body = %(body)s
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %%d, "duration_us": %%d, "connect_errors": %%d, "read_errors": %%d,'
    .. ' "write_errors": %%d, "non_2xx": %%d, "timeouts": %%d, "p50_us": %%d, "p90_us": %%d,'
    .. ' "p99_us": %%d, "max_us": %%d}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""


def run_wrk(
    path: str, body: str, token: str, seconds: float, connections: int, threads: int
) -> dict[str, Any]:
    """One wrk run (10 s request timeout, so a slow batch is a latency, not an error).

    wrk takes whole seconds only (it refuses "6.25s"), so a segment is rounded, at least 1 s.
    """
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT % {"token": token, "body": json.dumps(body)})
    out = subprocess.run(
        [
            "wrk",
            f"-t{min(threads, connections)}",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "10s",
            "-s",
            script.name,
            f"http://127.0.0.1:{HTTP_PORT}{path}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    Path(script.name).unlink()
    line = next(line for line in out.splitlines() if line.startswith("WRK_JSON "))
    return json.loads(line.removeprefix("WRK_JSON "))


def _phase(
    name: str,
    path: str,
    body: str,
    per_request: int,
    connections: int,
    args: argparse.Namespace,
    token: str,
    api: int,
) -> dict:
    """--segments wrk runs back to back; the gunicorn workers' memory after each one."""
    from jobs.models import Job

    before = Job.objects.count()
    segments = []
    workers = children_pids(api)
    api_cpu, machine_cpu = cpu_seconds(workers), machine_busy_seconds()
    for _ in range(args.segments):
        summary = run_wrk(path, body, token, args.seconds / args.segments, connections, args.threads)
        summary["rss_mb"] = children_rss_mb(api)
        segments.append(summary)
    api_cpu, machine_cpu = cpu_seconds(workers) - api_cpu, machine_busy_seconds() - machine_cpu
    created = Job.objects.count() - before
    requests = sum(s["requests"] for s in segments)
    seconds = sum(s["duration_us"] for s in segments) / 1e6
    errors = sum(
        s[k]
        for s in segments
        for k in ("connect_errors", "read_errors", "write_errors", "non_2xx", "timeouts")
    )
    phase = {
        "requests": requests,
        "requests_per_sec": round(requests / seconds, 1),
        "jobs_per_sec": round(requests * per_request / seconds, 1),
        "jobs_in_postgres": created,
        "errors": errors,
        "latency_ms_worst_segment": {
            k.removesuffix("_us"): round(max(s[k] for s in segments) / 1000, 2)
            for k in ("p50_us", "p90_us", "p99_us", "max_us")
        },
        "rss_mb_after_each_segment": [s["rss_mb"] for s in segments],
        # CPU per request: steadier than requests/s on a shared machine (see machine_busy_seconds)
        "api_cpu_ms_per_request": round(api_cpu * 1000 / requests, 3),
        "machine_cpu_ms_per_request": round(machine_cpu * 1000 / requests, 3),
    }
    lat = "  ".join(f"{k} {v}" for k, v in phase["latency_ms_worst_segment"].items())
    print(
        f"{name:<6} {phase['requests_per_sec']:>9,.0f} req/s  {phase['jobs_per_sec']:>9,.0f} jobs/s"
        f"  latency ms (worst segment): {lat}  errors {errors}  jobs in postgres {created:,}\n"
        f"       CPU ms per request: gunicorn workers {phase['api_cpu_ms_per_request']}, whole machine"
        f" {phase['machine_cpu_ms_per_request']} (wrk, Postgres and Redis included)\n"
        f"       gunicorn workers' RSS (MiB) after each segment: {phase['rss_mb_after_each_segment']}",
        flush=True,
    )
    return phase


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each phase")
    parser.add_argument("--connections", type=int, default=8, help="wrk's open connections")
    parser.add_argument("--batch-connections", type=int, default=2, help="wrk's connections for batches")
    parser.add_argument("--threads", type=int, default=2, help="wrk's threads")
    parser.add_argument("--gunicorn-workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=1000, help="jobs per POST /jobs/batch")
    parser.add_argument("--mode", choices=["single", "batch", "both"], default="both")
    parser.add_argument("--segments", type=int, default=4, help="wrk runs per phase (memory after each)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (Debian/Ubuntu: apt-get install wrk)")

    env = setup()
    reset()
    token = operator_token()
    api = start_api(env, args.gunicorn_workers)
    result: dict[str, Any] = {
        "gunicorn_workers": args.gunicorn_workers,
        "connections": args.connections,
        "batch_connections": args.batch_connections,
        "seconds": args.seconds,
    }
    try:
        single = json.dumps({"jobType": "taskforge.noop", "payload": {"n": 1}})
        run_wrk("/jobs", single, token, 2, args.connections, args.threads)  # warm-up
        result["rss_mb_after_warmup"] = children_rss_mb(api.pid)
        print(f"gunicorn workers' RSS (MiB) after warm-up: {result['rss_mb_after_warmup']}", flush=True)
        if args.mode in ("single", "both"):
            result["single"] = _phase("single", "/jobs", single, 1, args.connections, args, token, api.pid)
        if args.mode in ("batch", "both"):
            batch = json.dumps({"jobs": [{"jobType": "taskforge.noop", "payload": {"n": 1}}] * args.batch})
            result["batch"] = _phase(
                "batch", "/jobs/batch", batch, args.batch, args.batch_connections, args, token, api.pid
            )
    finally:
        stop([api])
    write_result("http-load", result)


if __name__ == "__main__":
    main()
