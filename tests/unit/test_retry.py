"""Backoff: delay(k) = min(initial * backoff^(k-1), max); jitter draws from [delay/2, delay]."""

from __future__ import annotations

import random

import pytest

from jobs.retry import RetryPolicy, backoff_delay_ms, decide_retry

DEFAULT = RetryPolicy()


@pytest.mark.parametrize(
    ("retry", "expected_ms"),
    [(1, 1000), (2, 2000), (3, 4000), (4, 8000), (5, 16000), (6, 32000), (7, 60000), (8, 60000), (50, 60000)],
)
def test_default_policy_doubles_from_one_second_then_caps(retry: int, expected_ms: int) -> None:
    assert backoff_delay_ms(DEFAULT, retry) == expected_ms


def test_custom_policy() -> None:
    policy = RetryPolicy(initial_delay_ms=100, backoff=3.0, max_delay_ms=1000)
    assert [backoff_delay_ms(policy, k) for k in range(1, 5)] == [100, 300, 900, 1000]


def test_huge_retry_numbers_do_not_overflow() -> None:
    assert backoff_delay_ms(RetryPolicy(backoff=100.0), 10_000) == DEFAULT.max_delay_ms


def test_retry_is_one_based() -> None:
    with pytest.raises(ValueError, match="1-based"):
        backoff_delay_ms(DEFAULT, 0)


def test_jitter_stays_within_half_and_full_delay() -> None:
    policy = RetryPolicy(jitter=True)
    rng = random.Random(7)
    draws = [backoff_delay_ms(policy, 3, rng) for _ in range(500)]
    assert all(2000 <= d <= 4000 for d in draws)
    assert len(set(draws)) > 100  # really spread, not a constant


def test_decide_retry_until_attempts_are_exhausted() -> None:
    policy = RetryPolicy(max_attempts=3)
    assert decide_retry(policy, attempt=1, permanent=False).delay_ms == 1000
    assert decide_retry(policy, attempt=2, permanent=False).delay_ms == 2000
    assert decide_retry(policy, attempt=3, permanent=False).dead_letter


def test_permanent_errors_dead_letter_at_once() -> None:
    assert decide_retry(DEFAULT, attempt=1, permanent=True).dead_letter
