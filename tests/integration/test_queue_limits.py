"""Per-queue limits: the API, and the pop script's token bucket and semaphore on real Redis."""

from __future__ import annotations

import pytest

from jobs.services import JobSpec, enqueue_jobs, update_queue_settings
from scheduler.services import sync_queue_settings
from workers import broker, keys

pytestmark = pytest.mark.django_db(transaction=True)


def _fill(queue: str, n: int) -> None:
    enqueue_jobs([JobSpec("taskforge.noop", queue=queue) for _ in range(n)])


def test_patch_sets_and_clears_limits(api) -> None:
    response = api.patch("/queues/mail", {"rateLimitPerSec": 2.5, "concurrencyLimit": 3}, format="json")
    assert response.status_code == 200
    assert response.json() == {"name": "mail", "paused": False, "rateLimitPerSec": 2.5, "concurrencyLimit": 3}
    assert api.get("/queues/mail").json()["concurrencyLimit"] == 3
    cleared = api.patch("/queues/mail", {"concurrencyLimit": None}, format="json").json()
    assert cleared["concurrencyLimit"] is None and cleared["rateLimitPerSec"] == 2.5  # untouched


@pytest.mark.parametrize(
    "body",
    [
        {"rateLimitPerSec": -1},
        {"rateLimitPerSec": "fast"},
        {"concurrencyLimit": 0},
        {"concurrencyLimit": 2.5},
        {"concurrencyLimit": True},
        {"burst": 5},
    ],
)
def test_patch_refuses_bad_limits(api, body: dict) -> None:
    response = api.patch("/queues/mail", body, format="json")
    assert response.status_code == 400 and response.json()["code"] == "validation_error"
    assert api.get("/queues").json()["items"] == []  # nothing was created


def test_an_unknown_queue_is_404(api) -> None:
    assert api.get("/queues/nothing-here").status_code == 404


def test_rate_limit_holds_jobs_back_in_redis(redis_db) -> None:
    update_queue_settings("slow", rate_limit_per_sec=2)
    _fill("slow", 10)
    first = broker.pop_ready(["slow"], 10, fair=False)
    assert len(first.ids) == 2  # the burst: one second's worth
    second = broker.pop_ready(["slow"], 10, fair=False)
    assert second.ids == [] and second.throttled == [("slow", "rate")]
    assert 0 < second.wait_seconds <= 0.5
    assert redis_db.zcard(keys.queue_key("slow")) == 8  # waiting jobs stay in Redis, unclaimed


def test_the_default_rate_applies_to_queues_without_their_own(redis_db) -> None:
    _fill("plain", 10)
    assert len(broker.pop_ready(["plain"], 10, fair=False, default_rate=3).ids) == 3
    update_queue_settings("plain", rate_limit_per_sec=0)  # 0: explicitly unlimited
    assert len(broker.pop_ready(["plain"], 10, fair=False, default_rate=3).ids) == 7


def test_concurrency_limit_is_a_semaphore_with_leases(redis_db) -> None:
    update_queue_settings("narrow", concurrency_limit=2)
    _fill("narrow", 6)
    first = broker.pop_ready(["narrow"], 10, fair=False, holder="w1")
    assert len(first.ids) == 2 and first.limited == set(first.ids)
    blocked = broker.pop_ready(["narrow"], 10, fair=False, holder="w2")
    assert blocked.ids == [] and blocked.throttled == [("narrow", "concurrency")]
    broker.release_slots({"narrow": first.ids[:1]}, "w2")  # not w2's slot: frees nothing
    assert broker.pop_ready(["narrow"], 10, fair=False, holder="w2").ids == []
    broker.release_slots({"narrow": first.ids[:1]}, "w1")
    assert len(broker.pop_ready(["narrow"], 10, fair=False, holder="w2").ids) == 1
    # a dead worker's slots come back when their lease runs out
    redis_db.zadd(keys.running_key("narrow"), {f"{first.ids[1]}|w1": 0})
    assert len(broker.pop_ready(["narrow"], 10, fair=False, holder="w2").ids) == 1


def test_limits_survive_a_redis_flush(redis_db) -> None:
    update_queue_settings("narrow", concurrency_limit=1)
    redis_db.flushdb()
    _fill("narrow", 3)
    sync_queue_settings()
    assert len(broker.pop_ready(["narrow"], 10, fair=False).ids) == 1
