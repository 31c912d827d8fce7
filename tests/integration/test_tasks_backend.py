"""The django.tasks backend on the real Postgres and Redis: enqueue, validation, transactions,
get_result through every state (driven by the services a worker uses), and the safe lookup."""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth.models import Group
from django.db import connection, transaction
from django.tasks import TaskResultStatus, task
from django.tasks.exceptions import (
    InvalidTask,
    InvalidTaskBackend,
    TaskResultDoesNotExist,
    TaskResultMismatch,
)
from django.tasks.signals import task_enqueued
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from jobs.backends import (
    STATUS_BY_STATE,
    InvalidTaskArguments,
    LeaseExpired,
    TaskForgeBackend,
    find_task,
    taskforge_task,
)
from jobs.errors import JobValidationError, PayloadTooLarge, UnknownJobType
from jobs.models import Job, JobEvent
from jobs.services import Outcome, enqueue_job, release_jobs, settle_jobs
from jobs.states import JobState
from scheduler.services import expire_leases, promote_due_jobs
from tests.conftest import claim_all, wait_for
from tests.tasksapp import tasks
from tests.tasksapp.tasks import TaskFailure, add, always_fails, flaky, gated
from workers import keys
from workers.registry import get_handler

pytestmark = pytest.mark.django_db(transaction=True)  # real commits: on_commit publishes run

S = TaskResultStatus


def _in_ready_queue(redis_db, job_id: str, queue: str) -> bool:
    return redis_db.zscore(keys.queue_key(queue), job_id) is not None


@pytest.fixture
def enqueued_signals() -> Iterator[list[str]]:
    """The ids task_enqueued was sent for, in this process."""
    seen: list[str] = []

    def receiver(sender: type, task_result, **kwargs) -> None:
        seen.append(task_result.id)

    task_enqueued.connect(receiver, dispatch_uid="test-enqueued")
    yield seen
    task_enqueued.disconnect(dispatch_uid="test-enqueued")


def test_enqueue_is_a_job_named_by_the_task_path(redis_db, enqueued_signals) -> None:
    result = add.enqueue(2, b=3)
    job = Job.objects.get(id=result.id)
    assert (job.job_type, job.payload, job.queue, job.priority) == (
        "tests.tasksapp.tasks.add",
        {"args": [2], "kwargs": {"b": 3}},
        "default",
        0,
    )
    assert job.state == JobState.QUEUED and _in_ready_queue(redis_db, result.id, "default")
    assert result.status == S.READY and result.enqueued_at == job.created_at
    assert (result.args, result.kwargs, result.attempts, result.backend) == ([2], {"b": 3}, 0, "default")
    assert enqueued_signals == [result.id]
    again = add.get_result(result.id)
    assert (again.id, again.status, again.args, again.task.func) == (result.id, S.READY, [2], add.func)
    with pytest.raises(TaskResultMismatch):
        flaky.get_result(result.id)


def test_queue_priority_and_run_after_map_onto_the_job(redis_db) -> None:
    later = timezone.now() + timedelta(hours=1)
    result = gated.using(priority=-5, run_after=later).enqueue("g")
    job = Job.objects.get(id=result.id)
    assert (job.queue, job.priority, job.run_at, job.state) == ("tests-gated", -5, later, JobState.PENDING)
    assert not _in_ready_queue(redis_db, result.id, "tests-gated")
    read = gated.get_result(result.id)
    assert read.status == S.READY and (read.task.priority, read.task.run_after) == (-5, later)
    assert read.task.queue_name == "tests-gated"


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((timezone.now(),), {}, r"task argument 0 is not JSON \(Unsupported type"),
        ((1,), {"when": object()}, r"task keyword argument 'when' is not JSON"),
        ((float("nan"),), {}, "task argument 0 is not JSON"),
        (({1: "one"},), {}, "dict key 1 is not a string"),
        ((["a\x00b"],), {}, "task argument 0 contains a NUL character"),
        ((b"\xff",), {}, "task argument 0 is not JSON"),
    ],
)
def test_non_json_arguments_are_refused_at_enqueue(redis_db, enqueued_signals, args, kwargs, message) -> None:
    with pytest.raises(InvalidTaskArguments, match=message) as caught:
        add.enqueue(*args, **kwargs)
    assert isinstance(caught.value, TypeError) and isinstance(caught.value, JobValidationError)
    assert not Job.objects.exists() and redis_db.dbsize() == 0 and enqueued_signals == []


def test_arguments_are_normalised_like_django_and_size_is_limited(settings) -> None:
    result = add.enqueue((1, (2, 3)), b"bytes")
    assert Job.objects.get(id=result.id).payload == {"args": [[1, [2, 3]], "bytes"], "kwargs": {}}
    with pytest.raises(PayloadTooLarge):
        add.enqueue("x" * settings.TASKFORGE.max_payload_bytes, 1)
    assert Job.objects.count() == 1


def test_enqueue_commits_with_the_callers_writes_and_publishes_after(redis_db, enqueued_signals) -> None:
    with transaction.atomic():
        group = Group.objects.create(name="customers")
        result = add.enqueue(1, 2)
        assert not _in_ready_queue(redis_db, result.id, "default") and enqueued_signals == []
    assert Group.objects.filter(id=group.id).exists() and Job.objects.filter(id=result.id).exists()
    assert _in_ready_queue(redis_db, result.id, "default") and enqueued_signals == [result.id]


def test_enqueue_in_a_rolled_back_transaction_leaves_nothing(redis_db, enqueued_signals) -> None:
    with pytest.raises(RuntimeError), transaction.atomic():
        Group.objects.create(name="customers")
        result = add.enqueue(1, 2)
        raise RuntimeError("roll back")
    assert not Group.objects.exists() and not Job.objects.exists()
    assert redis_db.dbsize() == 0 and enqueued_signals == []
    with pytest.raises(TaskResultDoesNotExist):
        add.get_result(result.id)


def test_aenqueue_and_aget_result(redis_db) -> None:
    result = async_to_sync(add.aenqueue)(4, 5)
    assert _in_ready_queue(redis_db, result.id, "default")
    read = async_to_sync(add.aget_result)(result.id)
    assert (read.status, read.args) == (S.READY, [4, 5])
    with pytest.raises(InvalidTaskArguments):
        async_to_sync(add.aenqueue)(object())
    assert Job.objects.count() == 1


@pytest.mark.parametrize("result_id", ["5f0c8a52-7a1e-4c2b-9d39-2b7c6f0e4a11", "not-a-uuid", "", "x" * 100])
def test_get_result_of_an_unknown_id(result_id) -> None:
    with pytest.raises(TaskResultDoesNotExist):
        add.get_backend().get_result(result_id)


def test_get_result_of_a_job_that_is_not_a_task() -> None:
    job = enqueue_job("taskforge.noop").job
    with pytest.raises(TaskResultDoesNotExist):
        add.get_backend().get_result(str(job.id))


def test_every_state_maps_to_a_status() -> None:
    assert set(STATUS_BY_STATE) == set(JobState)
    assert {state for state, status in STATUS_BY_STATE.items() if status == S.READY} == {
        JobState.PENDING,
        JobState.QUEUED,
        JobState.RETRYING,
    }


def _claim_one(worker_id: str, lease_seconds: float = 30.0):
    (job,) = claim_all(worker_id, lease_seconds=lease_seconds)
    return job


def test_get_result_follows_attempts_errors_and_workers() -> None:
    result = add.enqueue(1, 2)  # tests/settings.py OPTIONS: INITIAL_DELAY_MS 50, the retry is due soon
    first = _claim_one("worker-a")
    running = add.get_result(result.id)
    assert (running.status, running.worker_ids, running.attempts) == (S.RUNNING, ["worker-a"], 1)
    assert running.started_at == running.last_attempted_at is not None

    settle_jobs(worker_id="worker-a", outcomes=[Outcome.failure(first, TaskFailure("boom"), permanent=False)])
    # One statement reads the job and its history: two would let a transition committed between
    # them show a RUNNING job beside the failure that ended its attempt (seen under CI load).
    with CaptureQueriesContext(connection) as reads:
        retrying = add.get_result(result.id)
    assert len(reads) == 1
    claimed = JobEvent.objects.get(job_id=result.id, type="claimed")
    assert retrying.started_at == claimed.at and retrying.worker_ids == [claimed.worker_id]
    assert (retrying.status, retrying.attempts, retrying.finished_at) == (S.READY, 1, None)
    (error,) = retrying.errors
    assert error.exception_class_path == "tests.tasksapp.tasks.TaskFailure"
    assert error.exception_class is TaskFailure and "TaskFailure: boom" in error.traceback

    wait_for(promote_due_jobs, what="the retry to be due")
    second = _claim_one("worker-b")
    again = add.get_result(result.id)
    assert again.worker_ids == ["worker-a", "worker-b"] and again.started_at < again.last_attempted_at
    settle_jobs(worker_id="worker-b", outcomes=[Outcome.success(second, 3)])
    done = add.get_result(result.id)
    assert (done.status, done.return_value, done.attempts, len(done.errors)) == (S.SUCCESSFUL, 3, 2, 1)
    assert done.finished_at == Job.objects.get(id=result.id).finished_at


def test_dead_lettered_and_cancelled_tasks_are_failed() -> None:
    dead = always_fails.enqueue("x")
    settle_jobs(worker_id="w", outcomes=[Outcome.failure(_claim_one("w"), TaskFailure("x"), permanent=True)])
    failed = always_fails.get_result(dead.id)
    assert (failed.status, failed.attempts, len(failed.errors)) == (S.FAILED, 1, 1)
    assert failed.finished_at is not None
    cancelled = add.enqueue(1, 1)
    settle_jobs(worker_id="w", outcomes=[Outcome.cancelled(_claim_one("w"))])
    read = add.get_result(cancelled.id)
    assert (read.status, read.errors, read.is_finished) == (S.FAILED, [], True)


def test_lease_expiry_is_an_error_and_a_release_is_no_attempt() -> None:
    result = add.enqueue(1, 1)
    _claim_one("worker-a", lease_seconds=0.05)
    wait_for(expire_leases, what="the lease to expire")
    expired = add.get_result(result.id)
    assert (expired.status, expired.worker_ids) == (S.READY, ["worker-a"])
    (error,) = expired.errors
    assert error.exception_class is LeaseExpired and "worker-a" in error.traceback

    released = _claim_one("worker-b")
    release_jobs(worker_id="worker-b", held={released.id: released.lease_token})
    assert add.get_result(result.id).worker_ids == ["worker-a"]  # a graceful release did not count
    _claim_one("worker-c")
    assert add.get_result(result.id).worker_ids == ["worker-a", "worker-c"]


def test_policy_layers(settings) -> None:
    def policy(task_obj) -> tuple:
        job = Job.objects.get(id=task_obj.enqueue().id)  # never runs: its arguments do not matter
        return job.max_attempts, job.initial_delay_ms, job.backoff, job.timeout_ms

    default_attempts = settings.TASKFORGE.default_max_attempts
    assert policy(add) == (default_attempts, 50, 2.0, None)  # OPTIONS, then TaskForge's defaults
    assert policy(always_fails) == (2, 10, 2.0, 30_000)  # @taskforge_task beats OPTIONS
    assert policy(flaky) == (4, 1500, 2.0, None)  # tests/settings.py's PER_TASK
    # The API path (a job type that names a task) takes the same policy from the handler spec.
    spec = get_handler("tests.tasksapp.tasks.always_fails")
    assert (spec.max_attempts, spec.initial_delay_ms, spec.timeout_ms, spec.queue) == (
        2,
        10,
        30_000,
        "default",
    )

    tasks_setting = dict(settings.TASKS)
    tasks_setting["default"] = {
        **tasks_setting["default"],
        "OPTIONS": {
            "BACKOFF": 3.0,
            "TIMEOUT_MS": 5_000,
            "PER_TASK": {"tests.tasksapp.tasks.always_fails": {"MAX_ATTEMPTS": 7}},
        },
    }
    settings.TASKS = tasks_setting
    assert policy(always_fails) == (7, 10, 3.0, 30_000)  # OPTIONS' PER_TASK beats @taskforge_task
    assert policy(add) == (default_attempts, 1000, 3.0, 5_000)


def test_a_task_job_can_be_enqueued_by_type(redis_db) -> None:
    job = enqueue_job("tests.tasksapp.tasks.gated", {"args": ["g"]}).job
    assert job.queue == "tests-gated"  # the task's queue is the type's default
    assert gated.get_result(str(job.id)).args == ["g"]


@pytest.mark.parametrize(
    "name",
    [
        "os.system",
        "tests.handlers.record",  # a module outside every installed app
        "tests.tasksapp.tasks.not_a_task",  # not a task object
        "tests.tasksapp.tasks.inline_only",  # a task of another backend
        "tests.tasksapp.tasks.TaskFailure",
        "tests.tasksapp.tasks",
        "tests.tasksapp.tasks.add.func",
        "tests.tasksapp.never_imported.hidden",  # a task, but in a module nothing imported
        "jobs.backends.find_task",
        "tests.tasksapp.tasks..add",
        "tests.tasksapp.tasks.add ",
        "x" * 300,
    ],
)
def test_only_decorated_tasks_of_installed_apps_resolve(name) -> None:
    assert find_task(name) is None and get_handler(name) is None
    with pytest.raises(UnknownJobType):
        enqueue_job(name, {"args": []})
    assert "tests.tasksapp.never_imported" not in sys.modules
    assert not Job.objects.exists()


def test_an_apps_tasks_module_is_imported_on_demand(monkeypatch) -> None:
    import tests.tasksapp

    monkeypatch.delitem(sys.modules, "tests.tasksapp.tasks")
    monkeypatch.delattr(tests.tasksapp, "tasks")
    found = find_task("tests.tasksapp.tasks.add")
    assert found is not None and found.module_path == "tests.tasksapp.tasks.add"
    assert sys.modules["tests.tasksapp.tasks"] is not tasks  # imported afresh, by name of its app


class _HeldLoader(importlib.abc.Loader):
    """Runs a module's code only once `release` is set: an import another thread is still doing."""

    def __init__(self, loader: importlib.abc.Loader, release: threading.Event) -> None:
        self.loader, self.release = loader, release

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module) -> None:
        self.release.wait(timeout=30)
        self.loader.exec_module(module)


def test_a_tasks_module_another_thread_is_importing_is_waited_for(monkeypatch) -> None:
    import tests.tasksapp

    name = "tests.tasksapp.tasks"
    monkeypatch.delitem(sys.modules, name)
    monkeypatch.delattr(tests.tasksapp, "tasks")
    spec = importlib.util.find_spec(name)
    release = threading.Event()
    spec.loader = _HeldLoader(spec.loader, release)

    class HoldOnce(importlib.abc.MetaPathFinder):
        def find_spec(self, fullname, path, target=None):
            return spec if fullname == name and not release.is_set() else None

    monkeypatch.setattr(sys, "meta_path", [HoldOnce(), *sys.meta_path])
    first: list = []
    importer = threading.Thread(target=lambda: first.append(find_task(f"{name}.add")))
    importer.start()
    wait_for(lambda: name in sys.modules, what="the first slot's import to begin")
    # A second worker slot asks while the module is in sys.modules but has not run: it waits.
    threading.Timer(0.3, release.set).start()
    second = find_task(f"{name}.add")
    importer.join(timeout=30)
    assert second is not None and first == [second]


def test_backend_flags() -> None:
    backend = add.get_backend()
    assert isinstance(backend, TaskForgeBackend)
    assert backend.supports_defer and backend.supports_async_task
    assert backend.supports_get_result and backend.supports_priority


def _outside_installed_apps() -> None:
    """A module-level function of a module that is not in an installed app."""


class _Holder:
    @staticmethod
    def method() -> None:
        """Not at module level: a worker could not find it by module attribute."""


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: task(_outside_installed_apps), "not in an installed app"),
        (lambda: task(_Holder.method), "module level"),
        (lambda: add.using(queue_name="no spaces"), "not a TaskForge queue name"),
        (lambda: add.using(priority=2.0), "priority has the wrong type"),
        (lambda: taskforge_task(max_attempts=0)(tasks.not_a_task), "max_attempts must be between 1 and 1000"),
        (lambda: taskforge_task(jitter="yes")(tasks.not_a_task), "jitter must be a boolean"),
        (lambda: taskforge_task(timeout_ms=0)(tasks.not_a_task), "timeout_ms must be between 1 and"),
        (lambda: taskforge_task(backend="inline")(tasks.not_a_task), "needs a TaskForge backend"),
    ],
)
def test_validate_task_refuses_what_taskforge_cannot_honour(make, message) -> None:
    with pytest.raises(InvalidTask, match=message):
        make()


@pytest.mark.parametrize(
    "make",
    [lambda: task(tasks.not_a_task), lambda: tasks.inline_only.using(backend="default")],
)
def test_enqueue_refuses_a_task_workers_would_not_find(make) -> None:
    with pytest.raises(InvalidTask, match="workers would not find it"):
        make().enqueue()
    assert not Job.objects.exists()


def test_backend_options_are_validated_all_at_once() -> None:
    params = {
        "QUEUES": ["ok", "not ok"],
        "OPTIONS": {"MAX_ATTEMPTS": 0, "COLOUR": 1, "PER_TASK": {"a.b": {"BACKOFF": 0.5, "JITTER": 1}}},
    }
    with pytest.raises(InvalidTaskBackend) as caught:
        TaskForgeBackend("bad", params)
    message = str(caught.value)
    for problem in (
        "QUEUES: 'not ok'",
        "OPTIONS['MAX_ATTEMPTS'] must be between 1 and 1000",
        "OPTIONS: unknown key 'COLOUR'",
        "OPTIONS['PER_TASK']['a.b']['BACKOFF'] must be between 1 and 100",
        "OPTIONS['PER_TASK']['a.b']['JITTER'] must be a boolean",
    ):
        assert problem in message
    with pytest.raises(InvalidTaskBackend, match="PER_TASK"):
        TaskForgeBackend("bad", {"OPTIONS": {"PER_TASK": ["a.b"]}})
