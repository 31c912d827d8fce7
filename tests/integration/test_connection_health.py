"""The health check of persistent connections (taskforge_site.postgres) on the real Postgres."""

from __future__ import annotations

import psycopg
import pytest
from django.db import close_old_connections, connection

from jobs import sql
from jobs.models import Job
from tests.conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def _admin() -> psycopg.Connection:
    """A connection of its own, as an operator or a failover would use."""
    settings = connection.settings_dict
    return psycopg.connect(
        host=settings["HOST"], port=settings["PORT"] or 5432, user=settings["USER"],
        dbname=settings["NAME"], password=settings["PASSWORD"] or None, autocommit=True,
    )  # fmt: skip


def test_a_healthy_idle_connection_passes_without_a_query() -> None:
    Job.objects.count()
    pid = connection.connection.info.backend_pid
    assert connection.is_usable()
    with _admin() as admin:
        (last,) = admin.execute("SELECT query FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone()
    assert last.startswith('SELECT COUNT(*) AS "__count" FROM "jobs"')  # not Django's SELECT 1


@pytest.mark.parametrize("path", ["orm", "named statement"])
def test_a_terminated_backend_is_replaced_by_the_next_request_not_failed(path: str) -> None:
    Job.objects.count()
    old = connection.connection
    with _admin() as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [old.info.backend_pid])
    wait_for(lambda: not connection.is_usable(), timeout=5, what="the goodbye from Postgres")
    close_old_connections()  # a request starts: the first query checks the connection
    if path == "orm":
        assert Job.objects.count() == 0
    else:
        assert sql.fetch("SELECT count(*) AS n FROM jobs", {}) == [{"n": 0}]
    assert connection.connection is not old
