"""Retry policy: a pure decision, kept apart from I/O so it is tested without a database."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a job is retried."""

    max_attempts: int = 5
    initial_delay_ms: int = 1000
    backoff: float = 2.0
    max_delay_ms: int = 60_000
    jitter: bool = False


def backoff_delay_ms(policy: RetryPolicy, retry: int, rng: random.Random | None = None) -> int:
    """Delay before retry number `retry` (1-based): min(initial * backoff^(retry-1), max).

    With jitter the delay is drawn uniformly from [delay/2, delay], which spreads a burst of
    failures without ever waiting longer than the cap.
    """
    if retry < 1:
        raise ValueError("retry is 1-based")
    try:
        raw = policy.initial_delay_ms * policy.backoff ** (retry - 1)
    except OverflowError:  # far past any cap
        raw = math.inf
    delay = min(raw, policy.max_delay_ms)
    if policy.jitter:
        delay = (rng or random).uniform(delay / 2, delay)
    return int(delay)


@dataclass(frozen=True)
class RetryDecision:
    """Either retry after `delay_ms`, or dead-letter (`delay_ms` is None)."""

    delay_ms: int | None

    @property
    def dead_letter(self) -> bool:
        return self.delay_ms is None


def decide_retry(
    policy: RetryPolicy, *, attempt: int, permanent: bool, rng: random.Random | None = None
) -> RetryDecision:
    """After failed attempt number `attempt`, retry with backoff or give up.

    Attempts are counted at claim, so `attempt` includes crashed attempts too.
    """
    if permanent or attempt >= policy.max_attempts:
        return RetryDecision(None)
    return RetryDecision(backoff_delay_ms(policy, attempt, rng))
