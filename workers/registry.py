"""The handler registry: only job types registered here (or django.tasks tasks) ever run.

Handlers are plain functions ``handler(ctx, payload) -> result`` registered by name. A job type
is never imported from user input; the API refuses unregistered types with `unknown_job_type`.
A type no handler is registered for may still name a django.tasks task of an installed app
(workers/tasks_bridge.py, which imports nothing a job names).
Modules named ``handlers`` in installed apps, plus TASKFORGE_HANDLER_MODULES, are imported at
start-up by every process (API, scheduler, worker), so all agree on the registry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from workers.context import JobContext

HandlerFunc = Callable[[JobContext, Any], Any]


@dataclass(frozen=True)
class HandlerSpec:
    """A registered handler and its per-type defaults (None: use the settings' default)."""

    name: str
    func: HandlerFunc
    queue: str | None = None
    max_attempts: int | None = None
    initial_delay_ms: int | None = None
    backoff: float | None = None
    max_delay_ms: int | None = None
    jitter: bool | None = None
    timeout_ms: int | None = None


_registry: dict[str, HandlerSpec] = {}


def handler(
    name: str,
    *,
    queue: str | None = None,
    max_attempts: int | None = None,
    initial_delay_ms: int | None = None,
    backoff: float | None = None,
    max_delay_ms: int | None = None,
    jitter: bool | None = None,
    timeout_ms: int | None = None,
) -> Callable[[HandlerFunc], HandlerFunc]:
    """Registers `func` as the handler of job type `name`, with optional defaults."""

    def register(func: HandlerFunc) -> HandlerFunc:
        existing = _registry.get(name)
        if existing is not None and existing.func is not func:
            raise ValueError(f"job type {name!r} is already registered to {existing.func!r}")
        _registry[name] = HandlerSpec(
            name, func, queue, max_attempts, initial_delay_ms, backoff, max_delay_ms, jitter, timeout_ms
        )
        return func

    return register


def job_type_of(func: HandlerFunc) -> str | None:
    """The job type `func` is registered as, if any (for @periodic, which decorates handlers)."""
    return next((spec.name for spec in _registry.values() if spec.func is func), None)


def get_handler(name: str) -> HandlerSpec | None:
    """The handler registered for a job type, else the django.tasks task it safely names, if any."""
    spec = _registry.get(name)
    if spec is None:
        # Imported here: the bridge needs jobs.services, which imports this module.
        from workers.tasks_bridge import task_handler

        spec = task_handler(name)
    return spec
