"""A whole TaskForge deployment on loopback for one chaos run: real processes, private servers.

The API (gunicorn), schedulers and workers are the real commands (`manage.py runworker` ...),
each with its own log under the run's directory, all pointed at the private Postgres and Redis
of tests/chaos/servers.py. The stack remembers how each process ended (killed, stopped, or on
its own), so the ledger can tell a duplicate caused by a kill from one with no excuse, and the
harness can restart a process that died by itself and report it.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.chaos.handlers import LEDGER_DDL
from tests.chaos.servers import PrivatePostgres, PrivateRedis, die_with_parent, free_port, reap, wait_until

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
# The only variables a stack process inherits: TaskForge's own come from Stack.env alone.
INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TZ")


@dataclass(frozen=True)
class StackConfig:
    """The shape of the deployment; the defaults are the issue's (API, 2 schedulers, 3 workers)."""

    workers: int = 3
    schedulers: int = 2
    concurrency: int = 10
    lease_seconds: float = 10.0  # a kill -9 costs its jobs this long before they run again
    short_lease_seconds: float = 2.0  # the "clock stress" lease
    grace_seconds: float = 1.0  # SIGTERM: jobs still running after this are released
    tick_seconds: float = 0.25
    gunicorn_workers: int = 2
    gunicorn_threads: int = 8
    keep_data: bool = False  # keep the Postgres cluster's files after close(), to investigate


class Service:
    """One process of the stack under a fixed name; its log accumulates across restarts."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log: Path) -> None:
        self.name, self.args, self.env, self.log = name, args, env, log
        self.popen: subprocess.Popen[bytes] | None = None
        self.expect_exit = False  # we signalled it: its exit is no surprise

    def start(self, **env: str) -> None:
        self.env = {**self.env, **env}
        self.expect_exit = False
        with self.log.open("ab") as out:
            out.write(f"--- start {' '.join(self.args)} {env or ''}\n".encode())
            out.flush()
            self.popen = subprocess.Popen(
                [PYTHON, *self.args],
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent(signal.SIGKILL),
            )

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def handles_sigterm(self) -> bool:
        """Whether the process has installed its SIGTERM handler (SigCgt in /proc), so a stop now
        is the graceful one; before that, SIGTERM's default action simply kills it."""
        try:
            status = Path(f"/proc/{self.pid}/status").read_text()
        except FileNotFoundError:
            return False
        caught = next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:"))
        return bool(int(caught, 16) >> (signal.SIGTERM - 1) & 1)

    def signal(self, sig: int) -> None:
        self.expect_exit = True
        if self.alive():
            assert self.popen is not None
            self.popen.send_signal(sig)

    def wait(self, timeout: float) -> int | None:
        """The exit code, or None if it is still running after `timeout`."""
        assert self.popen is not None
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout: float) -> int:
        """SIGTERM, then SIGKILL after `timeout`; the exit code."""
        assert self.popen is not None
        self.signal(signal.SIGTERM)
        return reap(self.popen, timeout)


@dataclass
class Reply:
    status: int
    body: Any
    seconds: float


class ApiDown(Exception):
    """No HTTP answer at all (refused, reset, timed out)."""


class Api:
    """A keep-alive client of the stack's HTTP API; use one per thread."""

    # gunicorn closes a connection idle for 2 s (its keepalive); a request sent just then would
    # meet a closed socket, which says nothing about TaskForge. Idle ones are replaced first.
    MAX_IDLE_SECONDS = 1.0

    def __init__(self, port: int, token: str, timeout: float = 30.0) -> None:
        self.port, self.token, self.timeout = port, token, timeout
        self._conn: http.client.HTTPConnection | None = None
        self._used = 0.0

    def call(self, method: str, path: str, body: Any = None) -> Reply:
        if self._conn is not None and time.monotonic() - self._used > self.MAX_IDLE_SECONDS:
            self._conn.close()
            self._conn = None
        if self._conn is None:
            self._conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        sent = {"Authorization": f"Token {self.token}"}
        data = None
        if body is not None:
            data, sent["Content-Type"] = json.dumps(body), "application/json"
        started = time.monotonic()
        try:
            self._conn.request(method, path, body=data, headers=sent)
            response = self._conn.getresponse()
            raw = response.read()
        except (OSError, http.client.HTTPException) as exc:
            self._conn.close()
            self._conn = None
            raise ApiDown(f"{type(exc).__name__}: {exc}") from exc
        self._used = time.monotonic()
        seconds = self._used - started
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw.decode(errors="replace")
        return Reply(response.status, parsed, seconds)


class PythonClient:
    """The tests.chaos.client process: enqueue_jobs over a pipe, one batch at a time."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env, self.log = env, log
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[str] | None = None

    def _process(self) -> subprocess.Popen[str]:
        if self._proc is None or self._proc.poll() is not None:
            with self.log.open("ab") as err:
                self._proc = subprocess.Popen(
                    [PYTHON, "-m", "tests.chaos.client"],
                    cwd=ROOT,
                    env=self.env,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=err,
                    text=True,
                    preexec_fn=die_with_parent(signal.SIGKILL),
                )
        return self._proc

    def enqueue(self, specs: list[dict[str, Any]]) -> dict[str, Any]:
        """{"ok": True, "jobs": [[id, created], ...]} or {"ok": False, "error": ...}."""
        with self._lock:
            proc = self._process()
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(json.dumps(specs) + "\n")
            proc.stdin.flush()
            line = proc.stdout.readline()
        if not line:
            return {"ok": False, "error": "the client process died"}
        return json.loads(line)

    def close(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            assert self._proc.stdin is not None
            self._proc.stdin.close()
            reap(self._proc, 10)


@dataclass(frozen=True)
class Ended:
    """How one process of the stack ended: "kill -9", "SIGTERM", or "died by itself (code)"."""

    name: str
    pid: int
    how: str
    at: float = field(default_factory=time.time)  # wall clock, to compare with the database's


class Stack:
    """Servers, migrations, a token, then the API, schedulers and workers; `close()` stops all."""

    def __init__(self, workdir: Path, config: StackConfig | None = None) -> None:
        self.dir = workdir
        self.config = config or StackConfig()
        self.pg = PrivatePostgres(workdir)
        self.redis = PrivateRedis(workdir)
        self.http_port = free_port()
        self.services: dict[str, Service] = {}
        self.ended: list[Ended] = []
        self.token = ""
        self.python: PythonClient | None = None

    # ---- environment ---------------------------------------------------------------------
    def env(self, role: str, **extra: str) -> dict[str, str]:
        """Everything a stack process reads; application_name tells its Postgres sessions apart."""
        cfg = self.config
        return {
            **{k: os.environ[k] for k in INHERITED if k in os.environ},
            "POSTGRES_DSN": self.pg.dsn(application_name=f"chaos-{role}"),
            "REDIS_ADDR": self.redis.addr,
            "REDIS_DB": "0",
            "SECRET_KEY": "taskforge-chaos",
            "DJANGO_SETTINGS_MODULE": "taskforge_site.settings",
            "TASKFORGE_HANDLER_MODULES": "tests.chaos.handlers",
            "HTTP_ADDR": f"127.0.0.1:{self.http_port}",
            "LOG_LEVEL": "warn",
            "PYTHONUNBUFFERED": "1",
            "TASKFORGE_LEASE_SECONDS": f"{cfg.lease_seconds:g}",
            "TASKFORGE_SHUTDOWN_GRACE_SECONDS": f"{cfg.grace_seconds:g}",
            "TASKFORGE_SCHEDULER_TICK_SECONDS": f"{cfg.tick_seconds:g}",
            "GUNICORN_WORKERS": str(cfg.gunicorn_workers),
            "GUNICORN_THREADS": str(cfg.gunicorn_threads),
            **extra,
        }

    def manage(self, *args: str) -> str:
        """A one-off manage.py command; its stdout."""
        done = subprocess.run(
            [PYTHON, "manage.py", *args],
            cwd=ROOT,
            env=self.env("setup"),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{done.stderr[-3000:]}")
        return done.stdout

    # ---- life cycle ----------------------------------------------------------------------
    def start(self) -> None:
        self.pg.init()
        self.redis.start()
        self.manage("migrate", "--noinput", "-v", "0")
        self.pg.execute(LEDGER_DDL)
        self.token = self.manage("createapitoken", "chaos", "--role", "operator").strip()
        cfg = self.config
        commands = {"api": ["-m", "gunicorn", "-c", "gunicorn.conf.py"]}
        commands |= {f"scheduler-{i}": ["manage.py", "runscheduler"] for i in range(1, cfg.schedulers + 1)}
        for i in range(1, cfg.workers + 1):
            commands[f"worker-{i}"] = ["manage.py", "runworker", "--concurrency", str(cfg.concurrency)]
        for name, args in commands.items():
            self.services[name] = Service(name, args, self.env(name), self.dir / f"{name}.log")
            self.services[name].start()
        self.python = PythonClient(self.env("python-client"), self.dir / "python-client.log")
        wait_until(self.ready, 60, "the API's /readyz")

    def ready(self) -> bool:
        try:
            return Api(self.http_port, self.token, timeout=5).call("GET", "/readyz").status == 200
        except ApiDown:
            return False

    def close(self) -> dict[str, int]:
        """Stops every process (SIGTERM, as an operator would) and the servers; the exit codes."""
        codes = {}
        for service in self.services.values():
            if service.alive():
                service.signal(signal.SIGTERM)
        for name, service in self.services.items():
            if service.popen is not None:
                codes[name] = service.stop(timeout=40)
        if self.python is not None:
            self.python.close()
        self.redis.stop()
        self.pg.stop()
        if not self.config.keep_data:
            self.pg.remove()
        return codes

    def api(self) -> Api:
        return Api(self.http_port, self.token)

    # ---- processes -----------------------------------------------------------------------
    @property
    def workers(self) -> list[str]:
        return [name for name in self.services if name.startswith("worker-")]

    @property
    def schedulers(self) -> list[str]:
        return [name for name in self.services if name.startswith("scheduler-")]

    def kill(self, name: str, sig: int, *, timeout: float = 30.0) -> None:
        """Signals a process and waits for it to exit (SIGKILL after `timeout`)."""
        service = self.services[name]
        pid = service.pid
        service.signal(sig)
        if service.wait(timeout) is None:
            service.signal(signal.SIGKILL)
            service.wait(30)
        how = "kill -9" if sig == signal.SIGKILL else signal.Signals(sig).name
        self.ended.append(Ended(name, pid, how))

    def restart(self, name: str, **env: str) -> None:
        """Starts the process again and waits until it handles SIGTERM: a fault that stops it
        while it still imports Django would only test Python's default signal action."""
        service = self.services[name]
        service.start(**env)
        wait_until(lambda: service.handles_sigterm() or not service.alive(), 60, f"{name} to start")

    def revive_crashed(self) -> list[Ended]:
        """Restarts processes that exited without being told to, and returns them (each is a bug)."""
        crashed = []
        for name, service in self.services.items():
            if service.popen is not None and not service.alive() and not service.expect_exit:
                crashed.append(Ended(name, service.pid, f"died by itself (exit {service.popen.returncode})"))
                self.ended.append(crashed[-1])
                service.start()
        return crashed

    def worker_fates(self) -> dict[int, Ended]:
        """pid -> how and when that worker process ended, for every worker that ended (ids embed the pid)."""
        return {e.pid: e for e in self.ended if e.name.startswith("worker-")}
