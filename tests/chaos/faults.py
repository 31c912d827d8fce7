"""The faults a chaos run injects, one function each, and the schedule that takes turns among them.

Each fault acts on the stack and returns a line saying what it did, and possibly how to undo it
later (the short leases end after a while). Every kind runs once per round, in a shuffled
order, so a run of N rounds injects each kind N times.
"""

from __future__ import annotations

import random
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tests.chaos.stack import Stack

REDIS_PAUSE_MS = 2000
OUTAGE_SECONDS = 1.0  # how long a restarted server stays down
Undo = Callable[[], None]


def worker_kill9(stack: Stack, rng: random.Random) -> str:
    name = rng.choice(stack.workers)
    stack.kill(name, signal.SIGKILL)
    stack.restart(name)
    return f"kill -9 {name}, restarted"


def scheduler_kill9(stack: Stack, rng: random.Random) -> str:
    name = rng.choice(stack.schedulers)
    stack.kill(name, signal.SIGKILL)
    stack.restart(name)
    return f"kill -9 {name}, restarted"


def worker_sigterm(stack: Stack, rng: random.Random) -> str:
    name = rng.choice(stack.workers)
    started = time.monotonic()
    stack.kill(name, signal.SIGTERM)
    stack.restart(name)
    return f"SIGTERM {name} (exited after {time.monotonic() - started:.1f}s), restarted"


def redis_flushall(stack: Stack, rng: random.Random) -> str:
    stack.redis.client().flushall()
    return "FLUSHALL"


def redis_restart(stack: Stack, rng: random.Random) -> str:
    stack.redis.restart(OUTAGE_SECONDS)
    return f"SHUTDOWN NOSAVE, started again after {OUTAGE_SECONDS:g}s"


def redis_pause(stack: Stack, rng: random.Random) -> str:
    stack.redis.client().execute_command("CLIENT", "PAUSE", REDIS_PAUSE_MS, "ALL")
    return f"CLIENT PAUSE {REDIS_PAUSE_MS} ALL"


def postgres_terminate_workers(stack: Stack, rng: random.Random) -> str:
    rows = stack.pg.execute(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
        " WHERE application_name LIKE 'chaos-worker-%%'"
    )
    return f"pg_terminate_backend of {rows[0][0]} worker sessions"


def postgres_restart(stack: Stack, rng: random.Random) -> str:
    immediate = rng.random() < 0.5
    stack.pg.restart(immediate=immediate, down_seconds=OUTAGE_SECONDS)
    return f"{'immediate (crash)' if immediate else 'fast'} shutdown, started again after {OUTAGE_SECONDS:g}s"


def short_leases(stack: Stack, rng: random.Random) -> tuple[str, Undo]:
    """Clock stress: one worker runs with 2-second leases while 1.5-second handlers run.

    Its heartbeat (every lease/3) has little slack: any stall (Postgres restart, CPU) loses leases.
    """
    name = rng.choice(stack.workers)

    def lease(seconds: float) -> None:
        stack.kill(name, signal.SIGTERM)
        stack.restart(name, TASKFORGE_LEASE_SECONDS=f"{seconds:g}")

    lease(stack.config.short_lease_seconds)
    return f"{name} restarted with {stack.config.short_lease_seconds:g}s leases", lambda: lease(
        stack.config.lease_seconds
    )


FAULTS: dict[str, Callable[[Stack, random.Random], str | tuple[str, Undo]]] = {
    "worker kill -9": worker_kill9,
    "scheduler kill -9": scheduler_kill9,
    "worker SIGTERM": worker_sigterm,
    "redis FLUSHALL": redis_flushall,
    "redis restart": redis_restart,
    "redis CLIENT PAUSE 2s": redis_pause,
    "postgres terminate worker backends": postgres_terminate_workers,
    "postgres restart": postgres_restart,
    "short leases (2s) + 1.5s handlers": short_leases,
}


@dataclass(frozen=True)
class Injected:
    """One fault: its kind, what it did and when (wall clock, to compare with the database's)."""

    kind: str
    detail: str
    started: float
    ended: float


@dataclass
class FaultSchedule:
    """Takes turns among FAULTS (shuffled each round), undoes what needs it after `undo_after`
    seconds, and remembers what it injected."""

    rng: random.Random
    undo_after: float
    injected: list[Injected] = field(default_factory=list)
    _round: list[str] = field(default_factory=list)
    _undo: list[tuple[float, Undo]] = field(default_factory=list)

    def inject_next(self, stack: Stack) -> Injected:
        if not self._round:
            self._round = list(FAULTS)
            self.rng.shuffle(self._round)
        kind = self._round.pop()
        started = time.time()
        done = FAULTS[kind](stack, self.rng)
        if isinstance(done, tuple):
            done, undo = done
            self._undo.append((time.monotonic() + self.undo_after, undo))
        self.injected.append(Injected(kind, done, started, time.time()))
        return self.injected[-1]

    def undo_due(self, *, everything: bool = False) -> None:
        """Undoes what is due (or everything, at the end of the run)."""
        now = time.monotonic()
        for entry in [e for e in self._undo if everything or e[0] <= now]:
            self._undo.remove(entry)
            entry[1]()
