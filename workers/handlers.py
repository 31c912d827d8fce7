"""Built-in job types, used by the demo, the tests and the benchmarks."""

from __future__ import annotations

from typing import Any

from workers.context import JobContext, PermanentError
from workers.registry import handler


@handler("taskforge.noop")
def noop(ctx: JobContext, payload: Any) -> None:
    """Does nothing: measures the queue itself."""


@handler("taskforge.echo")
def echo(ctx: JobContext, payload: Any) -> Any:
    """Returns its payload as the result."""
    return payload


def _object(payload: Any) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise PermanentError("payload must be a JSON object")
    return payload


@handler("taskforge.sleep")
def sleep(ctx: JobContext, payload: Any) -> dict[str, float]:
    """Sleeps `seconds` (stops early when cancelled or the lease is lost)."""
    seconds = _object(payload).get("seconds", 1.0)
    if not isinstance(seconds, int | float) or isinstance(seconds, bool) or not 0 <= seconds <= 86_400:
        raise PermanentError("seconds must be a number from 0 to 86400")
    ctx.wait(float(seconds))
    ctx.raise_if_cancelled()
    return {"slept": float(seconds)}


@handler("taskforge.fail")
def fail(ctx: JobContext, payload: Any) -> dict[str, int]:
    """Fails (retryable, or permanent); with `times: n` only its first n attempts fail."""
    body = _object(payload)
    times = body.get("times")
    if isinstance(times, int) and not isinstance(times, bool) and ctx.attempt > times:
        return {"succeededOnAttempt": ctx.attempt}
    message = str(body.get("message", "taskforge.fail was asked to fail"))
    if body.get("permanent") is True:
        raise PermanentError(message)
    raise RuntimeError(message)
