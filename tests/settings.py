"""Settings of the test runs: TaskForge's own, plus an app whose django.tasks run on TaskForge.

tests/environment.py selects this module, so the runworker and runscheduler subprocesses of
the e2e tests load it too and see the same tasks and TASKS.
"""

from taskforge_site.settings import *  # noqa: F403
from taskforge_site.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "tests.tasksapp"]

TASKS = {
    "default": {
        "BACKEND": "jobs.backends.TaskForgeBackend",
        "QUEUES": [],
        "OPTIONS": {
            "INITIAL_DELAY_MS": 50,
            # A retry waits long enough for a test to see the task READY between its attempts.
            "PER_TASK": {"tests.tasksapp.tasks.flaky": {"INITIAL_DELAY_MS": 1500, "MAX_ATTEMPTS": 4}},
        },
    },
    "inline": {"BACKEND": "django.tasks.backends.immediate.ImmediateBackend", "QUEUES": []},
}
