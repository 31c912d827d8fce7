"""TaskForge as a backend of Django's tasks framework (``django.tasks``).

With ``TASKS = {"default": {"BACKEND": "jobs.backends.TaskForgeBackend"}}`` every ``@task`` is
enqueued as a TaskForge job whose type is the task's module path (``shop.tasks.send_receipt``)
and whose payload is ``{"args": [...], "kwargs": {...}}``, so leases, retries with backoff, the
DLQ, metrics and the ops UI apply to it unchanged. The worker side is workers/tasks_bridge.py;
both find a task only through ``find_task``, which never imports what a job names.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from functools import partial
from importlib import import_module
from typing import Any

from asgiref.sync import sync_to_async
from django.apps import apps
from django.conf import settings
from django.db import transaction
from django.tasks import Task, TaskResult, TaskResultStatus, task, task_backends
from django.tasks.backends.base import BaseTaskBackend
from django.tasks.base import TaskError
from django.tasks.exceptions import InvalidTask, InvalidTaskBackend, TaskResultDoesNotExist
from django.tasks.signals import task_enqueued
from django.utils.json import normalize_json
from django.utils.module_loading import module_has_submodule

from jobs.errors import JobValidationError, PayloadTooLarge
from jobs.models import Job, JobEvent
from jobs.selectors import job_with_history
from jobs.services import JobSpec, _check_range, dump_json, enqueue_jobs
from jobs.states import JobState
from taskforge_site.env import QUEUE_NAME_RE

logger = logging.getLogger("taskforge.tasks")

MAX_TASK_PATH_CHARS = 200  # the jobs.job_type column

# The policy a task may set (retries and timeout): TASKS OPTIONS key -> JobSpec/HandlerSpec field.
POLICY_OPTIONS = {
    "MAX_ATTEMPTS": "max_attempts",
    "INITIAL_DELAY_MS": "initial_delay_ms",
    "BACKOFF": "backoff",
    "MAX_DELAY_MS": "max_delay_ms",
    "JITTER": "jitter",
    "TIMEOUT_MS": "timeout_ms",
}

# django.tasks has four statuses: waiting and retrying are READY, the DLQ and a cancel are FAILED.
STATUS_BY_STATE = {
    JobState.PENDING: TaskResultStatus.READY,
    JobState.QUEUED: TaskResultStatus.READY,
    JobState.RETRYING: TaskResultStatus.READY,
    JobState.RUNNING: TaskResultStatus.RUNNING,
    JobState.SUCCEEDED: TaskResultStatus.SUCCESSFUL,
    JobState.DLQ: TaskResultStatus.FAILED,
    JobState.CANCELED: TaskResultStatus.FAILED,
}


class InvalidTaskArguments(JobValidationError, TypeError):
    """A task argument JSON cannot carry exactly; a TypeError too, like Django's own backends raise."""


class LeaseExpired(Exception):
    """Names, in TaskResult.errors, an attempt whose worker stopped renewing its lease (crash or hang)."""


def exception_path(error_class: type[BaseException]) -> str:
    """The dotted path TaskError.exception_class imports back."""
    return f"{error_class.__module__}.{error_class.__qualname__}"


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskForgeTask(Task):
    """A django.tasks Task that also carries a retry policy and timeout; None: the backend's."""

    max_attempts: int | None = None
    initial_delay_ms: int | None = None
    backoff: float | None = None
    max_delay_ms: int | None = None
    jitter: bool | None = None
    timeout_ms: int | None = None


def taskforge_task(
    function: Callable[..., Any] | None = None,
    *,
    max_attempts: int | None = None,
    initial_delay_ms: int | None = None,
    backoff: float | None = None,
    max_delay_ms: int | None = None,
    jitter: bool | None = None,
    timeout_ms: int | None = None,
    **options: Any,
) -> Any:
    """``@task`` with a retry policy and timeout: ``@taskforge_task(max_attempts=8, queue_name="mail")``.

    Django 6.0's ``@task`` accepts no other keyword (6.1 hands extra ones to ``task_class``), so
    this is how code sets a task's policy today. ``options`` are ``@task``'s own arguments.
    """
    policy = {
        "max_attempts": max_attempts,
        "initial_delay_ms": initial_delay_ms,
        "backoff": backoff,
        "max_delay_ms": max_delay_ms,
        "jitter": jitter,
        "timeout_ms": timeout_ms,
    }

    def wrapper(func: Callable[..., Any]) -> TaskForgeTask:
        made = task(**options)(func)
        if not isinstance(made, TaskForgeTask):
            raise InvalidTask(
                f"@taskforge_task needs a TaskForge backend; {made.backend!r} is "
                f"{type(made.get_backend()).__name__}."
            )
        return replace(made, **policy)

    return wrapper(function) if function else wrapper


def find_task(name: str) -> Task | None:
    """The TaskForge-backed task a job type names, or None; never imports what a job names.

    `name` must be a task object's own module path, in a module of an installed app that is
    already imported. The only import done here is that app's ``tasks`` module (where Django's
    docs put tasks), so job data can reach nothing but a decorated task of an installed app.
    """
    parts = name.split(".") if isinstance(name, str) and len(name) <= MAX_TASK_PATH_CHARS else []
    if len(parts) < 2 or not all(part.isidentifier() for part in parts):
        return None
    module_name, attribute = ".".join(parts[:-1]), parts[-1]
    app = apps.get_containing_app_config(module_name)
    if app is None:
        return None
    tasks_module = f"{app.name}.tasks"
    # import_module even when it is in sys.modules: a module enters sys.modules before its code
    # runs, and import_module waits for another thread (worker slot) still running that code.
    if tasks_module in sys.modules or module_has_submodule(app.module, "tasks"):
        try:
            import_module(tasks_module)
        except Exception:  # a broken tasks module must not take an API request or a worker slot down
            logger.exception("cannot import a tasks module", extra={"module": tasks_module})
            return None
    found = getattr(sys.modules.get(module_name), attribute, None)
    if not isinstance(found, Task) or found.module_path != name:
        return None
    try:
        backend = task_backends[found.backend]
    except InvalidTaskBackend:
        return None
    return found if isinstance(backend, TaskForgeBackend) else None


def split_payload(payload: Any) -> tuple[list[Any], dict[str, Any]]:
    """A task job's payload as (args, kwargs); ValueError unless it is {"args": [...], "kwargs": {...}}."""
    if isinstance(payload, dict) and set(payload) <= {"args", "kwargs"}:
        args, kwargs = payload.get("args", []), payload.get("kwargs", {})
        if isinstance(args, list) and isinstance(kwargs, dict):
            return args, kwargs
    raise ValueError('a task\'s payload must be {"args": [...], "kwargs": {...}}')


def _non_string_key(value: Any) -> str | None:
    """The first dict key that is not a string (JSON would quietly turn it into one), if any."""
    if isinstance(value, dict):
        keys = [repr(key) for key in value if not isinstance(key, str)]
        if keys:
            return keys[0]
        children: Any = value.values()
    elif isinstance(value, list):
        children = value
    else:
        return None
    return next((key for child in children if (key := _non_string_key(child)) is not None), None)


def _json_argument(label: str, value: Any) -> Any:
    """One argument as Django normalises it (a tuple becomes a list), refused unless JSON gives it back."""
    try:
        value = normalize_json(value)
        dump_json(value, label, settings.TASKFORGE.max_payload_bytes)
        key = _non_string_key(value)
        if key is not None:
            raise TypeError(f"dict key {key} is not a string")
    except PayloadTooLarge:
        raise
    except JobValidationError as exc:
        raise InvalidTaskArguments(exc.message, exc.details) from None
    except (TypeError, ValueError) as exc:
        raise InvalidTaskArguments(f"The {label} is not JSON ({exc}).", {label: [str(exc)]}) from None
    return value


def _policy_problems(values: Mapping[str, Any]) -> dict[str, str]:
    """What is out of range among a priority and a policy (the API's limits, jobs.models.LIMITS)."""
    problems: dict[str, str] = {}
    for name, value in values.items():
        if name == "jitter":
            if value is not None and not isinstance(value, bool):
                problems[name] = "must be a boolean"
        else:
            _check_range(name, value, problems)
    return problems


def _parse_policy(options: Any, where: str, problems: list[str]) -> dict[str, Any]:
    """A policy from OPTIONS keys (MAX_ATTEMPTS, ...); adds what is wrong to `problems`."""
    if not isinstance(options, Mapping):
        problems.append(f"{where} must be a dict")
        return {}
    problems += [f"{where}: unknown key {key!r}" for key in options if key not in POLICY_OPTIONS]
    policy = {POLICY_OPTIONS[key]: value for key, value in options.items() if key in POLICY_OPTIONS}
    option_of = {field: key for key, field in POLICY_OPTIONS.items()}
    problems += [f"{where}[{option_of[f]!r}] {p}" for f, p in _policy_problems(policy).items()]
    return policy


def _attempts(
    events: Sequence[JobEvent], attempt_count: int
) -> tuple[list[str], list[TaskError], datetime | None, datetime | None]:
    """Each counted attempt's worker and error, plus the first and last attempt's start.

    Only attempts 1..attempt_count count, and a claim of attempt k supersedes what was recorded
    for attempts k and later: the worker released the job at shutdown (the attempt did not
    count) or an operator started it afresh.
    """
    worker_ids: list[str] = []
    errors: list[tuple[int, TaskError]] = []
    started_at = last_attempted_at = None
    for event in events:
        if event.type == "claimed":
            del worker_ids[event.attempt - 1 :]
            worker_ids.append(event.worker_id or "")
            errors = [(attempt, error) for attempt, error in errors if attempt < event.attempt]
            started_at = event.at if event.attempt == 1 or started_at is None else started_at
            last_attempted_at = event.at
        elif event.type == "failed":
            path = event.details.get("exceptionClass") or exception_path(Exception)
            trace = event.details.get("traceback") or event.details.get("error") or ""
            errors.append((event.attempt, TaskError(exception_class_path=path, traceback=trace)))
        elif event.type == "lease_expired":
            trace = f"lease expired: worker {event.worker_id} stopped renewing it"
            errors.append(
                (event.attempt, TaskError(exception_class_path=exception_path(LeaseExpired), traceback=trace))
            )
    counted = [error for attempt, error in errors if attempt <= attempt_count]
    return worker_ids[:attempt_count], counted, started_at, last_attempted_at


class TaskForgeBackend(BaseTaskBackend):
    """Enqueues django.tasks as TaskForge jobs and reads their results back from Postgres.

    OPTIONS: the policy of every task of this backend (MAX_ATTEMPTS, INITIAL_DELAY_MS, BACKOFF,
    MAX_DELAY_MS, JITTER, TIMEOUT_MS) and PER_TASK, {module path: policy}, which beats a task's
    own (@taskforge_task). Unset fields take TaskForge's defaults (TASKFORGE_DEFAULT_MAX_ATTEMPTS...).
    """

    task_class = TaskForgeTask
    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        problems = [
            f"QUEUES: {queue!r} is not a TaskForge queue name (1-100 of A-Z a-z 0-9 _ . : -)"
            for queue in self.queues
            if not isinstance(queue, str) or not QUEUE_NAME_RE.match(queue)
        ]
        defaults, per_task = self.options, {}
        if isinstance(self.options, Mapping):
            defaults = {key: value for key, value in self.options.items() if key != "PER_TASK"}
            per_task = self.options.get("PER_TASK", {})
        self.defaults = _parse_policy(defaults, "OPTIONS", problems)
        if not isinstance(per_task, Mapping):
            problems.append("OPTIONS['PER_TASK'] must be a dict of task paths")
            per_task = {}
        self.per_task = {
            path: _parse_policy(entry, f"OPTIONS['PER_TASK'][{path!r}]", problems)
            for path, entry in per_task.items()
        }
        if problems:
            raise InvalidTaskBackend(f"TASKS[{alias!r}]: " + "; ".join(problems))

    def validate_task(self, task: Task) -> None:
        """Django's checks, plus refusing what TaskForge cannot honour."""
        super().validate_task(task)
        path = task.module_path
        if "." in task.func.__qualname__:
            raise InvalidTask(
                f"{path!r}: TaskForge workers find tasks by module attribute; define it at module level."
            )
        if len(path) > MAX_TASK_PATH_CHARS:
            raise InvalidTask(f"{path!r}: a task's module path is at most {MAX_TASK_PATH_CHARS} characters.")
        if not isinstance(task.queue_name, str) or not QUEUE_NAME_RE.match(task.queue_name):
            raise InvalidTask(
                f"Queue {task.queue_name!r} is not a TaskForge queue name (1-100 of A-Z a-z 0-9 _ . : -)."
            )
        if apps.apps_ready and apps.get_containing_app_config(task.func.__module__) is None:
            raise InvalidTask(
                f"{path!r} is not in an installed app: TaskForge workers run tasks of INSTALLED_APPS only."
            )
        values = {"priority": task.priority}
        if isinstance(task, TaskForgeTask):
            values |= {field: getattr(task, field) for field in POLICY_OPTIONS.values()}
        problems = _policy_problems(values)
        if problems:
            raise InvalidTask(
                f"{path!r}: " + "; ".join(f"{name} {problem}" for name, problem in problems.items())
            )

    def task_policy(self, task: Task) -> dict[str, Any]:
        """The policy fields this task sets: OPTIONS, then the task's own, then OPTIONS' PER_TASK."""
        policy = dict(self.defaults)
        if isinstance(task, TaskForgeTask):
            policy |= {f: getattr(task, f) for f in POLICY_OPTIONS.values() if getattr(task, f) is not None}
        return policy | self.per_task.get(task.module_path, {})

    def enqueue(self, task: Task, args: Sequence[Any], kwargs: Mapping[str, Any]) -> TaskResult:
        """One job, committed with the caller's transaction.atomic() (or at once outside one)."""
        return self._insert(task, self._job_spec(task, args, kwargs))

    async def aenqueue(self, task: Task, args: Sequence[Any], kwargs: Mapping[str, Any]) -> TaskResult:
        """Validates in the event loop, then inserts on Django's connection as the async ORM does."""
        spec = self._job_spec(task, args, kwargs)
        return await sync_to_async(self._insert, thread_sensitive=True)(task, spec)

    def get_result(self, result_id: str) -> TaskResult:
        """The result as Postgres has it now; TaskResultDoesNotExist for unknown ids and other jobs."""
        read = job_with_history(str(result_id))
        found = find_task(read[0].job_type) if read is not None else None
        if read is None or found is None:
            raise TaskResultDoesNotExist(result_id)
        job, events = read
        try:
            found = found.using(
                priority=job.priority, queue_name=job.queue, run_after=job.run_at, backend=self.alias
            )
        except InvalidTask as exc:  # e.g. submitted over the API to a queue this backend refuses
            raise TaskResultDoesNotExist(f"{result_id}: {exc}") from None
        return self._task_result(found, job, events)

    def _job_spec(self, task: Task, args: Sequence[Any], kwargs: Mapping[str, Any]) -> JobSpec:
        """Everything checked that can be without the database, so bad calls fail before any I/O."""
        self.validate_task(task)
        if find_task(task.module_path) is None:
            raise InvalidTask(
                f"{task.module_path!r}: workers would not find it; a task must be the module-level "
                "object of its function's name, of a TaskForge backend, in an installed app."
            )
        payload = {
            "args": [_json_argument(f"task argument {i}", value) for i, value in enumerate(args)],
            "kwargs": {k: _json_argument(f"task keyword argument {k!r}", v) for k, v in kwargs.items()},
        }
        return JobSpec(
            job_type=task.module_path,
            payload=payload,
            queue=task.queue_name,
            priority=task.priority,
            run_at=task.run_after,
            **self.task_policy(task),
        )

    def _insert(self, task: Task, spec: JobSpec) -> TaskResult:
        job = enqueue_jobs([spec])[0].job
        result = self._task_result(task, job, [])
        # Like the Redis publish: only once the job is committed, never for a rolled-back one.
        transaction.on_commit(partial(task_enqueued.send, type(self), task_result=result))
        return result

    def _task_result(self, task: Task, job: Job, events: Sequence[JobEvent]) -> TaskResult:
        try:
            args, kwargs = split_payload(job.payload)
        except ValueError:  # submitted over the API with another shape: it fails at its first attempt
            args, kwargs = [], {}
        worker_ids, errors, started_at, last_attempted_at = _attempts(events, job.attempt_count)
        result = TaskResult(
            task=task,
            id=str(job.id),
            status=STATUS_BY_STATE[JobState(job.state)],
            enqueued_at=job.created_at,
            started_at=started_at,
            finished_at=job.finished_at,
            last_attempted_at=last_attempted_at,
            args=args,
            kwargs=kwargs,
            backend=self.alias,
            errors=errors,
            worker_ids=worker_ids,
        )
        if job.state == JobState.SUCCEEDED:
            object.__setattr__(result, "_return_value", job.result)
        return result
