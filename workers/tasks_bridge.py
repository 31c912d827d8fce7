"""Runs django.tasks tasks on TaskForge workers: the worker side of jobs.backends.

workers.registry.get_handler falls back to `task_handler` for a job type no handler is
registered for. Registered handlers therefore win, and a job type that is not a TaskForge-backed
task of an installed app (jobs.backends.find_task) stays unknown: the API refuses it with
`unknown_job_type` and a worker dead-letters it. Nothing named by job data is ever imported.
"""

from __future__ import annotations

import traceback
from functools import partial
from typing import Any

from django.conf import settings
from django.tasks import Task, TaskContext, TaskResult, TaskResultStatus
from django.tasks.base import TaskError
from django.tasks.exceptions import TaskResultDoesNotExist
from django.tasks.signals import task_finished, task_started
from django.utils import timezone
from django.utils.json import normalize_json

from jobs.backends import exception_path, find_task, split_payload
from jobs.retry import RetryPolicy, decide_retry
from jobs.services import dump_json
from workers.context import JobContext, PermanentError
from workers.registry import HandlerSpec


def task_handler(name: str) -> HandlerSpec | None:
    """A handler running the task `name` names, its retry policy as the per-type defaults."""
    found = find_task(name)
    if found is None:
        return None
    policy = found.get_backend().task_policy(found)
    return HandlerSpec(name, partial(run_task, found), queue=found.queue_name, **policy)


def run_task(task: Task, ctx: JobContext, payload: Any) -> Any:
    """One attempt, between task_started and task_finished; TaskContext and async functions too.

    The TaskResult the task and the signals see is read from Postgres (two indexed reads), so
    `attempts`, `worker_ids` and earlier `errors` are those of get_result.
    """
    try:
        args, kwargs = split_payload(payload)
    except ValueError as exc:
        raise PermanentError(str(exc)) from None
    backend = task.get_backend()
    try:
        result = backend.get_result(str(ctx.job_id))
    except TaskResultDoesNotExist as exc:
        raise PermanentError(f"this job is not a result of {backend.alias!r}: {exc}") from None
    task_started.send(type(backend), task_result=result)
    try:
        value = _call(task, result, args, kwargs)
    except BaseException as exc:  # the worker fails the attempt for these too (SystemExit, ...)
        _failed(result, ctx, exc)
        task_finished.send(type(backend), task_result=result)  # in the except: receivers see exc_info
        raise
    object.__setattr__(result, "status", TaskResultStatus.SUCCESSFUL)
    object.__setattr__(result, "_return_value", value)
    object.__setattr__(result, "finished_at", timezone.now())
    task_finished.send(type(backend), task_result=result)
    return value


def _call(task: Task, result: TaskResult, args: list[Any], kwargs: dict[str, Any]) -> Any:
    """Calls the function (an async one through async_to_sync, as Task.call does); JSON back."""
    if task.takes_context:
        args = [TaskContext(task_result=result), *args]
    value = task.call(*args, **kwargs)
    try:
        value = normalize_json(value)
        dump_json(value, "result", settings.TASKFORGE.max_payload_bytes)
    except (TypeError, ValueError) as exc:  # also TaskForge's JobValidationError and PayloadTooLarge
        raise PermanentError(f"the task's return value cannot be stored: {exc}") from exc
    return value


def _failed(result: TaskResult, ctx: JobContext, error: BaseException) -> None:
    """The attempt's error, and READY when it will be retried, else FAILED (as get_result will say)."""
    result.errors.append(
        TaskError(
            exception_class_path=exception_path(type(error)),
            traceback="".join(traceback.format_exception(error)),
        )
    )
    final = decide_retry(
        RetryPolicy(max_attempts=ctx.max_attempts),
        attempt=ctx.attempt,
        permanent=isinstance(error, PermanentError),
    ).dead_letter
    object.__setattr__(result, "status", TaskResultStatus.FAILED if final else TaskResultStatus.READY)
    if final:
        object.__setattr__(result, "finished_at", timezone.now())
