"""What a handler sees of its job, and the exceptions it may raise."""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field


class PermanentError(Exception):
    """Raise from a handler when retrying cannot help: the job goes to the DLQ at once."""


class JobTimeout(Exception):
    """An attempt ran past its job's `timeout`: a retryable failure (the handler's result is void)."""


class ChildDied(Exception):
    """With --pool processes, the process running the attempt died (killed, or crashed)."""


class JobCancelled(Exception):
    """Raised by JobContext.raise_if_cancelled(); the job ends CANCELED, not failed."""


@dataclass
class JobContext:
    """Per-attempt context. Handlers must be idempotent: use `job_id` and `attempt` for that."""

    job_id: uuid.UUID
    job_type: str
    queue: str
    attempt: int
    max_attempts: int
    worker_id: str
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _lost: bool = field(default=False, repr=False)

    def mark_cancel_requested(self) -> None:
        """Called by the worker when the heartbeat sees an operator's cancel."""
        self._stop.set()

    def mark_lease_lost(self) -> None:
        """Called by the worker when the lease is gone; the attempt's result is void."""
        self._lost = True
        self._stop.set()

    @property
    def cancel_requested(self) -> bool:
        """True once an operator asked to cancel or the lease was lost: stop soon."""
        return self._stop.is_set()

    @property
    def lease_lost(self) -> bool:
        """True when another process may own this job now; nothing this attempt settles counts."""
        return self._lost

    def raise_if_cancelled(self) -> None:
        """Cooperative cancellation point for long handlers."""
        if self._stop.is_set():
            raise JobCancelled(str(self.job_id))

    def wait(self, seconds: float) -> bool:
        """Sleeps up to `seconds`; returns True early when the job should stop."""
        return self._stop.wait(timeout=seconds)
