"""Django's PostgreSQL backend with a connection health check that costs no round trip."""

from __future__ import annotations

import select

from django.db.backends.postgresql import base
from psycopg import pq


class DatabaseWrapper(base.DatabaseWrapper):
    """With CONN_HEALTH_CHECKS, Django checks a persistent connection before each request's
    first query with a SELECT 1: a round trip, and Postgres work, on every API call.

    An idle connection between requests has nothing to read. Postgres writes to it only to
    say goodbye (a terminated backend, a shutdown) before closing it, and a closed socket reads
    as end of file: both make the socket readable, which poll() tells without a round trip.
    A connection lost silently (no FIN) is not seen here, but SELECT 1 would only hang on it.
    """

    def is_usable(self) -> bool:
        conn = self.connection
        if conn is None or conn.closed or conn.broken:
            return False
        if conn.info.transaction_status != pq.TransactionStatus.IDLE:
            return super().is_usable()
        poller = select.poll()
        try:
            poller.register(conn.fileno(), select.POLLIN)
            return not poller.poll(0)
        except (OSError, ValueError):
            return False
