"""Job types of the chaos runs (loaded with TASKFORGE_HANDLER_MODULES=tests.chaos.handlers).

Each wraps a built-in handler and first records the execution, (job id, attempt, worker id,
time), in the ledger table the harness owns. The row commits before the handler does its work
(autocommit), so a recorded execution really started; if the insert fails (Postgres down), the
attempt fails like any handler error and is retried. The harness then checks that every
SUCCEEDED job has the row of its successful attempt, and attributes every other row.
"""

from __future__ import annotations

from typing import Any

from django.db import connection

from workers import handlers as builtin
from workers.context import JobContext
from workers.registry import HandlerFunc, handler

LEDGER_TABLE = "chaos_executions"
LEDGER_DDL = f"""
CREATE TABLE IF NOT EXISTS {LEDGER_TABLE} (
  id bigserial PRIMARY KEY,
  job_id uuid NOT NULL,
  attempt int NOT NULL,
  worker_id text NOT NULL,
  at timestamptz NOT NULL DEFAULT clock_timestamp()
)
"""


def record_execution(ctx: JobContext) -> None:
    """Commits one ledger row for this attempt (Django's connections autocommit outside atomic())."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {LEDGER_TABLE} (job_id, attempt, worker_id) VALUES (%s, %s, %s)",
            [ctx.job_id, ctx.attempt, ctx.worker_id],
        )


def flaky(ctx: JobContext, payload: Any) -> str:
    """Fails until its job has been replayed from the DLQ, then succeeds: replays get exercised."""
    from jobs.models import JobEvent

    if not JobEvent.objects.filter(job_id=ctx.job_id, type="replayed").exists():
        raise RuntimeError("fails until replayed")
    return "replayed and done"


def _recorded(func: HandlerFunc) -> HandlerFunc:
    def run(ctx: JobContext, payload: Any) -> Any:
        record_execution(ctx)
        return func(ctx, payload)

    return run


for _name, _func in {
    "noop": builtin.noop,
    "sleep": builtin.sleep,
    "fail": builtin.fail,
    "flaky": flaky,
}.items():
    handler(f"chaos.{_name}")(_recorded(_func))
