"""Job types used only by the tests. Every execution is recorded in Redis, so a test can count
how often a handler really ran (at-least-once: duplicates are visible, never hidden)."""

from __future__ import annotations

import logging
from typing import Any

from scheduler.declarations import periodic
from workers import broker
from workers.context import JobContext
from workers.registry import handler

EXECUTIONS_KEY = "tests:executions"


@handler("tests.record")
def record(ctx: JobContext, payload: Any) -> dict[str, Any]:
    """Records (job id, attempt) and returns its payload."""
    broker.client().rpush(EXECUTIONS_KEY, f"{ctx.job_id}:{ctx.attempt}")
    return {"payload": payload, "attempt": ctx.attempt}


@handler("tests.defaults", queue="special", max_attempts=2, initial_delay_ms=10, backoff=3.0)
def with_defaults(ctx: JobContext, payload: Any) -> None:
    """A handler whose registration carries per-type defaults."""


@handler("tests.log")
def log_line(ctx: JobContext, payload: Any) -> None:
    """Logs one line without `extra=`: the worker adds the job's context (and trace ids)."""
    logging.getLogger("tests.handlers").warning("handler says hi")


@handler("tests.misbehave")
def misbehave(ctx: JobContext, payload: Any) -> None:
    """Fails the nasty ways real handlers do: SystemExit, or an error text Postgres cannot store."""
    if payload.get("how") == "exit":
        raise SystemExit(3)
    raise RuntimeError("bad \x00 byte and a lone \ud800 surrogate")


@handler("tests.stubborn")
def stubborn(ctx: JobContext, payload: Any) -> str:
    """Ignores cancellation and returns normally: the job must still end CANCELED."""
    import time

    deadline = time.monotonic() + float(payload.get("seconds", 1))
    while time.monotonic() < deadline:  # deliberately not ctx.wait(): it never looks at the flag
        time.sleep(0.05)
    return "finished anyway"


@handler("tests.flaky")
def flaky(ctx: JobContext, payload: Any) -> str:
    """Fails until its job has been replayed from the DLQ, then succeeds."""
    from jobs.models import JobEvent

    if not JobEvent.objects.filter(job_id=ctx.job_id, type="replayed").exists():
        raise RuntimeError("fails until replayed")
    return "ok"


@periodic("0 0 1 1 *", name="tests.new-year", payload={"declared": True}, misfire="skip")
@handler("tests.declared")
def declared(ctx: JobContext, payload: Any) -> Any:
    """A handler with a periodic schedule declared in code; it ticks once a year, so only
    "run now" makes it run within a test."""
    return payload


@handler("tests.spin")
def spin(ctx: JobContext, payload: Any) -> None:
    """Never returns and never looks at its context: only killing its process stops it."""
    while True:
        pass


@handler("tests.started_sleep")
def started_sleep(ctx: JobContext, payload: Any) -> None:
    """Marks in Redis that its handler really started (RUNNING only means claimed), then sleeps."""
    broker.client().rpush(STARTED_KEY, str(ctx.job_id))
    ctx.wait(float(payload.get("seconds", 1.0)))


STARTED_KEY = "tests:started"
