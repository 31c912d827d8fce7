"""Soak: the chaos harness for minutes to hours, then its report.

    python bench/soak.py --minutes 15 --rate 300

Starts a private Postgres and Redis (tests/chaos/servers.py), the API, 2 schedulers and 3
workers, submits jobs at --rate per second over HTTP and the Python API while faults hit the
stack every --fault-every seconds, waits for every job to finish, checks the ledger and prints
the report (tests/chaos/harness.py). The report also goes to bench/results/soak-*.json. Exits
1 when a check failed. Nothing outside its own temporary directory is touched.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from taskforge_site.shutdown import call_on_stop_signals  # noqa: E402
from tests.chaos.harness import ChaosConfig, run_chaos  # noqa: E402
from tests.chaos.stack import StackConfig  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=15.0, help="how long the load and the faults last")
    parser.add_argument("--rate", type=float, default=300.0, help="jobs submitted per second")
    parser.add_argument("--fault-every", type=float, default=10.0, help="seconds between two faults")
    parser.add_argument("--seed", type=int, help="makes the job mix and the fault order repeatable")
    parser.add_argument("--concurrency", type=int, default=20, help="slots per worker")
    parser.add_argument("--keep", action="store_true", help="keep the logs and the Postgres cluster")
    args = parser.parse_args()

    defaults = ChaosConfig()
    config = ChaosConfig(
        rate=args.rate,
        duration_seconds=args.minutes * 60,
        fault_every_seconds=args.fault_every,
        first_fault_after_seconds=args.fault_every,
        short_lease_window_seconds=60.0,
        quiet_timeout_seconds=600.0,
        seed=defaults.seed if args.seed is None else args.seed,
        stack=StackConfig(concurrency=args.concurrency, keep_data=args.keep),
    )
    workdir = Path(tempfile.mkdtemp(prefix="taskforge-soak-"))
    started = time.strftime("%Y%m%dT%H%M%S")
    stop = threading.Event()  # Ctrl-C or SIGTERM: end the load now, still check and report
    call_on_stop_signals(stop.set)
    try:
        report = run_chaos(config, workdir, progress=lambda line: print(line, flush=True), stop=stop)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    print(report.render(), flush=True)
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"soak-{started}.json"
    path.write_text(json.dumps(report.to_json(), indent=2, default=str))
    print(f"wrote {path.relative_to(ROOT)}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
