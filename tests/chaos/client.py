"""The chaos harness' Python API client: a process that enqueues with jobs.services.enqueue_jobs.

    python -m tests.chaos.client    (with the stack's environment)

Reads one JSON array of JobSpec fields per line on stdin, enqueues it as one batch (all or
nothing) and answers one line on stdout: {"ok": true, "jobs": [[id, created], ...]} once the
batch has committed, or {"ok": false, "error": "..."} when it has not been acknowledged.
"""

from __future__ import annotations

import contextlib
import json
import sys


def main() -> None:
    import django

    django.setup()
    from django.db import DatabaseError, connection

    from jobs.services import JobSpec, enqueue_jobs

    for line in sys.stdin:
        try:
            results = enqueue_jobs([JobSpec(**spec) for spec in json.loads(line)])
            answer = {"ok": True, "jobs": [[str(r.job.id), r.created] for r in results]}
        except Exception as exc:  # any failure is "not acknowledged"; the harness decides what next
            with contextlib.suppress(DatabaseError):
                connection.close()  # a dropped connection is replaced on the next batch
            answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
