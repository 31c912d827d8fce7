"""Django's own task API (django.tasks) end to end, with real runworker/runscheduler processes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import pytest
from django.db import transaction
from django.tasks import Task, TaskResult, TaskResultStatus
from django.tasks.exceptions import TaskResultDoesNotExist

from dlq.models import DeadLetter
from jobs.backends import InvalidTaskArguments
from jobs.models import Job
from tests.conftest import wait_for
from tests.tasksapp.apps import SIGNALS_KEY
from tests.tasksapp.tasks import TaskFailure, add, add_async, always_fails, flaky, gate_key, gated

pytestmark = pytest.mark.e2e

S = TaskResultStatus


def _result_when(task: Task, result_id: str, what: str, ok: Callable[[TaskResult], bool]) -> TaskResult:
    """Polls get_result until `ok` holds for it (generous deadline: the machine is shared)."""

    def probe() -> TaskResult | None:
        result = task.get_result(result_id)
        return result if ok(result) else None

    return wait_for(probe, timeout=60, what=what)


def _signals(redis_db, result_id: str) -> list[str]:
    """What the worker's task_started/task_finished receivers saw, as `signal:status:attempts`."""
    return [
        entry.replace(f":{result_id}:", ":")
        for entry in redis_db.lrange(SIGNALS_KEY, 0, -1)
        if f":{result_id}:" in entry
    ]


def test_get_result_walks_through_every_status(spawn, redis_db) -> None:
    enqueued = gated.enqueue("walk")
    ready = gated.get_result(enqueued.id)
    assert ready.status == S.READY and ready.attempts == 0 and ready.enqueued_at == enqueued.enqueued_at
    with pytest.raises(ValueError, match="not finished"):
        _ = ready.return_value

    spawn("runworker", "--concurrency", "2")
    running = _result_when(gated, enqueued.id, "RUNNING", lambda r: r.status == S.RUNNING)
    assert running.attempts == 1 and running.started_at is not None and running.finished_at is None
    assert running.worker_ids[0] == Job.objects.get(id=enqueued.id).lease_owner

    redis_db.rpush(gate_key("walk"), "open")
    enqueued.refresh()  # TaskResult.refresh() goes through the backend too
    done = _result_when(gated, enqueued.id, "SUCCESSFUL", lambda r: r.status == S.SUCCESSFUL)
    assert done.return_value == "opened" and done.is_finished and done.errors == []
    assert done.finished_at >= done.started_at >= done.enqueued_at
    assert _signals(redis_db, enqueued.id) == ["started:RUNNING:1", "finished:SUCCESSFUL:1"]


def test_failing_task_is_retried_then_successful(spawn, redis_db) -> None:
    spawn("runworker")
    spawn("runscheduler")
    result = flaky.enqueue(fail_times=1)
    # tests/settings.py gives flaky 1.5 s before its retry: READY again, one error, one attempt.
    waiting = _result_when(flaky, result.id, "the retry wait", lambda r: r.attempts == 1 and r.errors)
    assert waiting.status == S.READY
    done = _result_when(flaky, result.id, "SUCCESSFUL", lambda r: r.status == S.SUCCESSFUL)
    assert done.attempts == 2 and len(set(done.worker_ids)) == 1
    # The TaskContext of attempt 2 saw its own result id, attempt number and the first error.
    assert done.return_value == {"attempt": 2, "id": result.id, "errors": 1}
    (error,) = done.errors
    assert error.exception_class is RuntimeError and "attempt 1 fails" in error.traceback
    assert _signals(redis_db, result.id) == [
        "started:RUNNING:1",
        "finished:READY:1",
        "started:RUNNING:2",
        "finished:SUCCESSFUL:2",
    ]


def test_exhausted_task_is_failed_with_its_errors(spawn, redis_db) -> None:
    spawn("runworker")
    spawn("runscheduler")
    result = always_fails.enqueue("boom")  # @taskforge_task(max_attempts=2)
    failed = _result_when(always_fails, result.id, "FAILED", lambda r: r.status == S.FAILED)
    assert failed.attempts == 2 and failed.is_finished and failed.finished_at is not None
    assert [e.exception_class for e in failed.errors] == [TaskFailure, TaskFailure]
    assert all(e.traceback.rstrip().endswith("TaskFailure: boom") for e in failed.errors)
    with pytest.raises(ValueError, match="failed"):
        _ = failed.return_value
    assert DeadLetter.objects.get(job_id=result.id).reason == "attempts exhausted"
    assert _signals(redis_db, result.id) == [
        "started:RUNNING:1",
        "finished:READY:1",
        "started:RUNNING:2",
        "finished:FAILED:2",
    ]


def test_async_task_runs(spawn) -> None:
    spawn("runworker")
    result = add_async.enqueue(2, b=3)
    done = _result_when(add_async, result.id, "SUCCESSFUL", lambda r: r.status == S.SUCCESSFUL)
    assert done.return_value == {"sum": 5, "async": True} and done.kwargs == {"b": 3}


def test_refused_and_rolled_back_enqueues_leave_nothing(spawn) -> None:
    spawn("runworker")
    with pytest.raises(InvalidTaskArguments, match="task argument 0 is not JSON"):
        add.enqueue(datetime.now(), 1)
    with pytest.raises(RuntimeError, match="roll back"), transaction.atomic():
        rolled_back = add.enqueue(1, 1)
        raise RuntimeError("roll back")
    marker = add.enqueue(2, 2)
    done = _result_when(add, marker.id, "the marker task", lambda r: r.status == S.SUCCESSFUL)
    assert done.return_value == 4
    with pytest.raises(TaskResultDoesNotExist):
        add.get_result(rolled_back.id)
    assert [str(job_id) for job_id in Job.objects.values_list("id", flat=True)] == [marker.id]
