"""Shared fixtures: a clean Redis database per test, API clients by role, and helpers to poll
with a deadline."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from rest_framework.test import APIClient

from workers import broker


@pytest.fixture(autouse=True)
def redis_db() -> Iterator[redis.Redis]:
    """This xdist worker's Redis database, empty before and after each test."""
    client = broker.client()
    client.flushdb()
    yield client
    client.flushdb()


def api_token(role: str) -> str:
    """The token of a new user holding `role` ("viewer" or "operator"), as createapitoken makes it."""
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    from jobs.roles import grant_role

    user = get_user_model().objects.create(username=f"{role}-{uuid.uuid4().hex[:12]}")
    grant_role(user, role)
    return Token.objects.create(user=user).key


def api_client(role: str | None, **kwargs: Any) -> APIClient:
    """An APIClient sending a `role` user's token; None: anonymous. Needs database access."""
    client = APIClient(**kwargs)
    if role is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Token {api_token(role)}")
    return client


@pytest.fixture
def api(db: None) -> APIClient:
    """An operator's client, allowed everything: most API tests are about behaviour, not roles
    (tests/integration/test_api_auth.py covers those)."""
    return api_client("operator")


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

    ids = broker.pop_ready(broker.known_queues(), count, fair=True).ids
    jobs = claim_jobs(worker_id=worker_id, ids=ids, lease_seconds=lease_seconds)
    broker.ack_inflight(ids)
    return jobs
