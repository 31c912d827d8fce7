"""Real `runworker` / `runscheduler` subprocesses against the test database and Redis."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from django.db import connection
from psycopg.conninfo import make_conninfo

ROOT = Path(__file__).resolve().parents[2]


class Proc:
    """A TaskForge process started by a test; its output is kept for failure messages."""

    def __init__(
        self, args: list[str], env: dict[str, str], log: Path, program: Sequence[str] = ("manage.py",)
    ) -> None:
        self.args = args
        self.log = log
        self._out = log.open("wb")
        self.popen = subprocess.Popen(
            [sys.executable, *program, *args],
            cwd=ROOT,
            env=env,
            stdout=self._out,
            stderr=subprocess.STDOUT,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def signal(self, sig: int) -> None:
        self.popen.send_signal(sig)

    def wait(self, timeout: float) -> int:
        return self.popen.wait(timeout=timeout)

    def output(self) -> str:
        if not self._out.closed:
            self._out.flush()
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self._out.close()


def _test_dsn() -> str:
    s = connection.settings_dict
    params = {
        "dbname": s["NAME"],
        "user": s["USER"],
        "password": s["PASSWORD"],
        "host": s["HOST"],
        "port": s["PORT"],
    }
    return make_conninfo(**{k: str(v) for k, v in params.items() if v})


@pytest.fixture
def spawn(transactional_db: None, tmp_path: Path) -> Iterator:
    """spawn("runworker", "--concurrency", "4", env={...}) starts a process; all stop at teardown.

    `program=("-m", "gunicorn")` runs something other than manage.py with the same environment.
    """
    procs: list[Proc] = []
    base_env = {
        **os.environ,
        "POSTGRES_DSN": _test_dsn(),
        "TASKFORGE_SCHEDULER_TICK_SECONDS": "0.1",
        "LOG_LEVEL": "info",
        "PYTHONUNBUFFERED": "1",
    }

    def start(*args: str, env: dict[str, str] | None = None, program: Sequence[str] = ("manage.py",)) -> Proc:
        log = tmp_path / f"{program[-1]}-{args[0]}-{len(procs)}.log"
        proc = Proc(list(args), {**base_env, **(env or {})}, log, program)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.stop()
        # pytest shows what a test printed only when it failed: there, the processes' last words.
        tail = proc.output().splitlines()[-40:]
        print(f"--- {' '.join(proc.args)} (pid {proc.pid}), last {len(tail)} lines ---", *tail, sep="\n")
