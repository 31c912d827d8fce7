"""Configuration: every problem reported at once, naming the variable; bad config exits non-zero."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from taskforge_site.env import ConfigError, load_config

ROOT = Path(__file__).resolve().parents[2]
BASE = {"POSTGRES_DSN": "postgresql://u:secret@db.example:5433/tf", "SECRET_KEY": "k"}


def test_defaults() -> None:
    cfg = load_config(BASE)
    assert cfg.postgres == {
        "user": "u",
        "password": "secret",
        "host": "db.example",
        "port": "5433",
        "dbname": "tf",
    }
    assert (cfg.http_host, cfg.http_port) == ("0.0.0.0", 8080)
    assert cfg.queue_name == "jobs:ready"
    assert (cfg.redis_host, cfg.redis_port, cfg.redis_db) == ("localhost", 6379, 0)
    assert cfg.worker_concurrency == 10
    assert cfg.lease_seconds == 30
    assert cfg.max_payload_bytes == 1 << 20
    assert cfg.log_level == "info" and cfg.tracing_enabled is False and cfg.tracing_exporter == "stdout"


def test_libpq_key_value_dsn() -> None:
    cfg = load_config({**BASE, "POSTGRES_DSN": "host=/run/pg dbname=jobs user=tf"})
    assert cfg.postgres == {"host": "/run/pg", "dbname": "jobs", "user": "tf"}


def test_addresses() -> None:
    cfg = load_config({**BASE, "HTTP_ADDR": "127.0.0.1:9000", "REDIS_ADDR": "[::1]:6380"})
    assert (cfg.http_host, cfg.http_port, cfg.redis_host, cfg.redis_port) == ("127.0.0.1", 9000, "::1", 6380)
    assert load_config({**BASE, "REDIS_ADDR": "unix:///tmp/r.sock"}).redis_unix_socket == "/tmp/r.sock"


@pytest.mark.parametrize(
    ("value", "expected"), [(None, True), ("on", True), ("off", False), ("false", False)]
)
def test_api_auth_is_on_unless_switched_off(value, expected) -> None:
    env = BASE if value is None else {**BASE, "TASKFORGE_API_AUTH": value}
    assert load_config(env).api_auth is expected


def test_a_bad_api_auth_value_is_named() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config({**BASE, "TASKFORGE_API_AUTH": "sometimes"})
    assert caught.value.problems == ["TASKFORGE_API_AUTH: expected true or false, got 'sometimes'"]


def test_every_problem_is_reported_together() -> None:
    env = {
        "WORKER_CONCURRENCY": "lots",
        "TRACING_ENABLED": "maybe",
        "TASKFORGE_LEASE_SECONDS": "-1",
        "LOG_LEVEL": "loud",
        "REDIS_ADDR": "nohost",
        "HTTP_ADDR": "8080",
        "TASKFORGE_MAX_PAYLOAD_BYTES": "1e9",
    }
    with pytest.raises(ConfigError) as caught:
        load_config(env)
    text = "\n".join(caught.value.problems)
    for name in ["POSTGRES_DSN is required", "SECRET_KEY", *env]:
        assert name in text
    assert len(caught.value.problems) == len(env) + 2


def test_a_bad_dsn_is_named_without_echoing_it() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config({**BASE, "POSTGRES_DSN": "not a dsn with password=hunter2"})
    assert "POSTGRES_DSN" in str(caught.value) and "hunter2" not in str(caught.value)


def test_manage_py_exits_non_zero_listing_every_problem() -> None:
    env = {k: v for k, v in os.environ.items() if k not in {"POSTGRES_DSN", "SECRET_KEY"}}
    env["WORKER_CONCURRENCY"] = "0"
    proc = subprocess.run(
        [sys.executable, "manage.py", "runworker"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "POSTGRES_DSN is required" in proc.stderr
    assert "WORKER_CONCURRENCY" in proc.stderr and "SECRET_KEY" in proc.stderr
