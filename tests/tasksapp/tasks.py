"""django.tasks tasks the tests enqueue through Django's own API and run on real workers."""

from __future__ import annotations

import asyncio
import time

from django.tasks import TaskContext, task

from jobs.backends import taskforge_task
from workers import broker


class TaskFailure(Exception):
    """Raised by always_fails, so TaskResult.errors names a class of this module."""


def gate_key(gate: str) -> str:
    return f"tests:gate:{gate}"


@task
def add(a: int, b: int) -> int:
    return a + b


@task
async def add_async(a: int, b: int) -> dict[str, object]:
    await asyncio.sleep(0)
    return {"sum": a + b, "async": True}


@task(takes_context=True)
def flaky(context: TaskContext, fail_times: int) -> dict[str, object]:
    """Fails its first `fail_times` attempts; then reports what its context said."""
    if context.attempt <= fail_times:
        raise RuntimeError(f"attempt {context.attempt} fails")
    result = context.task_result
    return {"attempt": context.attempt, "id": result.id, "errors": len(result.errors)}


@taskforge_task(max_attempts=2, initial_delay_ms=10, timeout_ms=30_000)
def always_fails(message: str) -> None:
    raise TaskFailure(message)


@task(queue_name="tests-gated", priority=7)
def gated(gate: str) -> str:
    """Runs until the test pushes to its gate, so it can be seen RUNNING."""
    deadline = time.monotonic() + 60
    while broker.client().blpop([gate_key(gate)], timeout=1) is None:  # under the client's 5 s timeout
        if time.monotonic() > deadline:
            raise TimeoutError(f"gate {gate!r} never opened")
    return "opened"


@task(backend="inline")
def inline_only() -> None:
    """A task of another backend: TaskForge must not run it."""


def not_a_task() -> None:
    """A plain function of an installed app: no job may run it."""
