"""Shared fixtures: a clean Redis database per test, and helpers to poll with a deadline."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
import redis

from workers import broker


@pytest.fixture(autouse=True)
def redis_db() -> Iterator[redis.Redis]:
    """This xdist worker's Redis database, empty before and after each test."""
    client = broker.client()
    client.flushdb()
    yield client
    client.flushdb()


def wait_for[T](
    condition: Callable[[], T], *, timeout: float = 20.0, interval: float = 0.05, what: str = ""
) -> T:
    """Polls `condition` until it returns something truthy; fails the test at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what or condition}")
        time.sleep(interval)


def claim_all(worker_id: str = "test-worker", lease_seconds: float = 30.0, count: int = 100) -> list:
    """Pops and claims what is ready, as a worker would (the worker's first two steps)."""
    from jobs.services import claim_jobs

    ids = broker.pop_ready(broker.known_queues(), count, fair=True)
    jobs = claim_jobs(worker_id=worker_id, ids=ids, lease_seconds=lease_seconds)
    broker.ack_inflight(ids)
    return jobs
