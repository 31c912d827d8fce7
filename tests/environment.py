"""Test-run environment, loaded as a pytest plugin (-p) before Django reads its settings.

Tests talk to the real Postgres and Redis. Each pytest-xdist worker gets its own Redis
database (pytest-django already gives each its own Postgres database), so parallel runs never
see each other's queues.
"""

import os

_worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
# TASKFORGE_TEST_REDIS_DB moves the base, so two test runs on one machine can coexist (give
# each its own POSTGRES_DSN database name too).
_base = int(os.environ.get("TASKFORGE_TEST_REDIS_DB", "8"))
os.environ["REDIS_DB"] = str(_base + int(_worker.removeprefix("gw") or 0))
os.environ.setdefault("POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/taskforge")
os.environ.setdefault("SECRET_KEY", "taskforge-tests")
os.environ["TASKFORGE_HANDLER_MODULES"] = "tests.handlers"
# Over ./dev's default too: the test app's django.tasks need tests/settings.py, in this process
# and in the worker subprocesses (they inherit it).
os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
os.environ.setdefault("LOG_LEVEL", "warn")
