from typing import Any

from django.apps import AppConfig
from django.tasks.signals import task_finished, task_started

from workers import broker

SIGNALS_KEY = "tests:task-signals"


def _record(signal: str, task_result: Any) -> None:
    broker.client().rpush(
        SIGNALS_KEY, f"{signal}:{task_result.id}:{task_result.status}:{task_result.attempts}"
    )


def _started(sender: type, task_result: Any, **kwargs: Any) -> None:
    _record("started", task_result)


def _finished(sender: type, task_result: Any, **kwargs: Any) -> None:
    _record("finished", task_result)


class TasksAppConfig(AppConfig):
    name = "tests.tasksapp"

    def ready(self) -> None:
        """Records every task_started/task_finished in Redis, so a test sees what a worker sent."""
        task_started.connect(_started, dispatch_uid="tests.tasksapp.started")
        task_finished.connect(_finished, dispatch_uid="tests.tasksapp.finished")
