"""`runworker --pool processes`: each slot runs its handlers in a child process.

A thread cannot be killed; a process can. When an attempt outruns its timeout, the watchdog
kills the slot's child and the slot starts a new one, so a handler stuck in C code or an
endless loop costs one process, not a slot. The price: a fork per slot at start, pickling the
job and its outcome, and the child does not see cancel requests (only timeouts stop it).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING

import django

from workers.context import JobContext

if TYPE_CHECKING:
    from jobs.services import ClaimedJob, Outcome


class ChildSlot:
    """One slot's child process; `run` sends it a job and waits for the outcome."""

    def __init__(self) -> None:
        self._start()

    def _start(self) -> None:
        # spawn, not fork: forking a process that runs threads can copy a lock some other thread
        # held; a fresh interpreter costs about a second per (re)start instead.
        context = multiprocessing.get_context("spawn")
        self._conn, child_conn = context.Pipe()
        self._process = context.Process(
            target=_serve, args=(child_conn,), name="taskforge-child", daemon=True
        )
        self._process.start()
        child_conn.close()

    def run(self, job: ClaimedJob) -> Outcome | None:
        """The attempt's outcome, or None when the child died (it is replaced at once)."""
        try:
            self._conn.send(job)
            return self._conn.recv()
        except (EOFError, OSError):
            self._process.join(timeout=5)
            self._conn.close()
            self._start()
            return None

    def kill(self) -> None:
        """Stops the child for real (the watchdog, on a timeout)."""
        pid = self._process.pid
        if pid is not None:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _serve(conn: Connection) -> None:
    """The child's loop: run each job sent and send back its outcome."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the parent decides
    django.setup()  # a fresh interpreter: settings and the handler registry load as in the parent
    from workers.runtime import run_handler

    while True:
        try:
            job = conn.recv()
        except EOFError:  # the parent is gone
            return
        ctx = JobContext(
            job_id=job.id,
            job_type=job.job_type,
            queue=job.queue,
            attempt=job.attempt,
            max_attempts=job.policy.max_attempts,
            worker_id=f"{os.getppid()}/{os.getpid()}",
        )
        conn.send(run_handler(job, ctx))
