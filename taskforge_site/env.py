"""Reads and validates TaskForge's configuration from the environment.

This is the only module that reads ``os.environ`` for configuration. Every variable is parsed
at once and every problem is collected, so an operator fixes a broken deployment in one go
instead of one error per restart.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from psycopg.conninfo import conninfo_to_dict

LOG_LEVELS = ("debug", "info", "warn", "error")
TRACING_EXPORTERS = ("stdout", "none")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
QUEUE_NAME_RE = re.compile(r"\A[A-Za-z0-9_.:-]{1,100}\Z")  # \Z: "jobs\n" is not a name


class ConfigError(Exception):
    """Raised with every configuration problem found, one per line."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid configuration:\n" + "\n".join(f"  - {p}" for p in problems))


@dataclass(frozen=True)
class Config:
    """The validated configuration; units are in the names."""

    postgres: dict[str, str]
    http_host: str
    http_port: int
    queue_name: str
    redis_host: str
    redis_port: int
    redis_unix_socket: str
    redis_db: int
    redis_password: str
    log_level: str
    ui_dir: str
    worker_concurrency: int
    rate_limit_per_sec: float
    tracing_enabled: bool
    tracing_exporter: str
    lease_seconds: float
    max_payload_bytes: int
    scheduler_tick_seconds: float
    retention_days: int
    shutdown_grace_seconds: float
    default_max_attempts: int
    secret_key: str
    debug: bool
    allowed_hosts: list[str]
    handler_modules: list[str]
    api_auth: bool  # False only for local experiments: the API then answers anyone


class _Reader:
    """Collects problems while converting each variable."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self.problems: list[str] = []

    def raw(self, name: str, default: str | None = None) -> str | None:
        value = self.environ.get(name)
        if value is None or value.strip() == "":
            return default
        return value.strip()

    def parsed(self, name: str, default: Any, parse: Callable[[str], Any], expected: str) -> Any:
        value = self.raw(name)
        if value is None:
            return default
        try:
            return parse(value)
        except (TypeError, ValueError):
            self.problems.append(f"{name}: expected {expected}, got {value!r}")
            return default

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        def parse(v: str) -> int:
            n = int(v)
            if not low <= n <= high:
                raise ValueError
            return n

        return self.parsed(name, default, parse, f"an integer from {low} to {high}")

    def number(self, name: str, default: float, low: float, high: float) -> float:
        def parse(v: str) -> float:
            n = float(v)
            if not low <= n <= high:  # also rejects NaN
                raise ValueError
            return n

        return self.parsed(name, default, parse, f"a number from {low:g} to {high:g}")

    def boolean(self, name: str, default: bool) -> bool:
        def parse(v: str) -> bool:
            if v.lower() in _TRUE:
                return True
            if v.lower() in _FALSE:
                return False
            raise ValueError

        return self.parsed(name, default, parse, "true or false")

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        def parse(v: str) -> str:
            if v.lower() not in choices:
                raise ValueError
            return v.lower()

        return self.parsed(name, default, parse, "one of " + "|".join(choices))


def _parse_postgres(reader: _Reader) -> dict[str, str]:
    dsn = reader.raw("POSTGRES_DSN")
    if dsn is None:
        reader.problems.append(
            "POSTGRES_DSN is required (postgresql://user:pass@host:port/db or 'host=... dbname=...')"
        )
        return {}
    try:
        params = conninfo_to_dict(dsn)
    except Exception:  # psycopg raises ProgrammingError; never echo the DSN (it may hold a password)
        reader.problems.append("POSTGRES_DSN: not a valid PostgreSQL URL or key=value string")
        return {}
    if not params.get("dbname"):
        reader.problems.append("POSTGRES_DSN: names no database (dbname)")
    return {k: str(v) for k, v in params.items()}


def _parse_http_addr(reader: _Reader) -> tuple[str, int]:
    value = reader.raw("HTTP_ADDR", ":8080") or ":8080"
    host, sep, port = value.rpartition(":")
    try:
        if not sep or not 0 < int(port) < 65536:
            raise ValueError
    except ValueError:
        reader.problems.append(f"HTTP_ADDR: expected [host]:port, got {value!r}")
        return "0.0.0.0", 8080
    return (host.strip("[]") or "0.0.0.0"), int(port)


def _parse_redis_addr(reader: _Reader) -> tuple[str, int, str]:
    """Accepts host:port, [v6]:port, or unix:///path/to/socket (embedded servers use a socket)."""
    value = reader.raw("REDIS_ADDR", "localhost:6379") or "localhost:6379"
    if value.startswith("unix://"):
        return "", 0, value.removeprefix("unix://")
    host, sep, port = value.rpartition(":")
    try:
        if not sep or not host or not 0 < int(port) < 65536:
            raise ValueError
    except ValueError:
        reader.problems.append(f"REDIS_ADDR: expected host:port or unix:///path, got {value!r}")
        return "localhost", 6379, ""
    return host.strip("[]"), int(port), ""


def load_config(environ: Mapping[str, str]) -> Config:
    """Parses every variable; raises ConfigError listing all problems together."""
    r = _Reader(environ)
    postgres = _parse_postgres(r)
    http_host, http_port = _parse_http_addr(r)
    redis_host, redis_port, redis_socket = _parse_redis_addr(r)
    queue_name = r.raw("QUEUE_NAME", "jobs:ready") or "jobs:ready"
    if not QUEUE_NAME_RE.match(queue_name):
        r.problems.append(
            f"QUEUE_NAME: expected 1-100 characters of letters, digits and _.:-, got {queue_name!r}"
        )
    debug = r.boolean("DEBUG", False)
    secret_key = r.raw("SECRET_KEY") or ""
    if not secret_key:
        if not debug:
            r.problems.append("SECRET_KEY is required unless DEBUG=true")
        secret_key = "taskforge-insecure-development-key"
    allowed = r.raw("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]") or ""
    config = Config(
        postgres=postgres,
        http_host=http_host,
        http_port=http_port,
        queue_name=queue_name,
        redis_host=redis_host,
        redis_port=redis_port,
        redis_unix_socket=redis_socket,
        redis_db=r.integer("REDIS_DB", 0, 0, 10_000),
        redis_password=r.raw("REDIS_PASSWORD", "") or "",
        log_level=r.choice("LOG_LEVEL", "info", LOG_LEVELS),
        ui_dir=r.raw("UI_DIR", "") or "",
        worker_concurrency=r.integer("WORKER_CONCURRENCY", 10, 1, 1000),
        rate_limit_per_sec=r.number("RATE_LIMIT_PER_SEC", 0.0, 0.0, 1_000_000.0),
        tracing_enabled=r.boolean("TRACING_ENABLED", False),
        tracing_exporter=r.choice("TRACING_EXPORTER", "stdout", TRACING_EXPORTERS),
        lease_seconds=r.number("TASKFORGE_LEASE_SECONDS", 30.0, 0.5, 86_400.0),
        max_payload_bytes=r.integer("TASKFORGE_MAX_PAYLOAD_BYTES", 1 << 20, 2, 64 << 20),
        scheduler_tick_seconds=r.number("TASKFORGE_SCHEDULER_TICK_SECONDS", 0.5, 0.01, 60.0),
        retention_days=r.integer("TASKFORGE_RETENTION_DAYS", 7, 0, 36_500),
        shutdown_grace_seconds=r.number("TASKFORGE_SHUTDOWN_GRACE_SECONDS", 30.0, 0.0, 86_400.0),
        default_max_attempts=r.integer("TASKFORGE_DEFAULT_MAX_ATTEMPTS", 5, 1, 1000),
        secret_key=secret_key,
        debug=debug,
        allowed_hosts=[h.strip() for h in allowed.split(",") if h.strip()],
        handler_modules=[
            m.strip() for m in (r.raw("TASKFORGE_HANDLER_MODULES", "") or "").split(",") if m.strip()
        ],
        api_auth=r.boolean("TASKFORGE_API_AUTH", True),
    )
    if r.problems:
        raise ConfigError(r.problems)
    return config
