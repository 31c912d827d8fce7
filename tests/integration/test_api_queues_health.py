"""GET /queues, GET /queues/{q}/jobs, /healthz and /readyz against real Postgres and Redis."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from jobs import selectors, services
from jobs.api import views
from jobs.models import Job
from jobs.states import JobState

STATES = {s.value for s in JobState}


def body_of(response: Any) -> Any:
    assert response["Content-Type"].split(";")[0].strip() == "application/json"
    return json.loads(response.content)


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    body = body_of(response)
    assert set(body) == {"code", "message", "details"}
    assert body["code"] == code
    assert isinstance(body["message"], str) and body["message"].strip()
    return body


def _dead_redis() -> redis.Redis:
    """A real client aimed at a port nothing listens on: Redis is down as far as we can tell."""
    return redis.Redis(
        host="127.0.0.1", port=1, socket_connect_timeout=0.5, socket_timeout=0.5, retry=Retry(NoBackoff(), 0)
    )


def enqueue(queue: str, *, delay_ms: int | None = None, job_type: str = "tests.record") -> str:
    return str(services.enqueue_job(job_type, {}, queue=queue, delay_ms=delay_ms).job.id)


# -- /queues -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_queues_list_counts_by_state_and_depth(api) -> None:
    enqueue("alpha")
    enqueue("alpha")
    enqueue("alpha", delay_ms=60_000)
    running = enqueue("alpha")
    assert services.claim_jobs(worker_id="w", ids=[uuid.UUID(running)], lease_seconds=30)
    enqueue("beta")

    response = api.get("/queues")

    assert response.status_code == 200
    items = body_of(response)["items"]
    by_name = {item["name"]: item for item in items}
    assert set(by_name) == {"alpha", "beta"}
    assert [item["name"] for item in items] == sorted(by_name)
    alpha = by_name["alpha"]
    assert set(alpha) >= {"name", "depth", "counts"}
    assert set(alpha["counts"]) == STATES  # every state, zeros included
    assert {k: v for k, v in alpha["counts"].items() if v} == {"QUEUED": 2, "PENDING": 1, "RUNNING": 1}
    assert alpha["depth"] == 2
    assert alpha["total"] == 4
    assert by_name["beta"]["depth"] == 1
    assert by_name["beta"]["counts"]["QUEUED"] == 1


@pytest.mark.django_db
def test_queues_list_is_empty_without_jobs(api) -> None:
    response = api.get("/queues")
    assert response.status_code == 200
    assert body_of(response) == {"items": []}


@pytest.mark.django_db(transaction=True)
def test_queues_list_includes_a_queue_known_to_redis_whose_jobs_are_gone(api) -> None:
    job_id = enqueue("ghost")  # committed, so published to Redis
    Job.objects.filter(id=job_id).delete()  # as retention pruning would

    items = {item["name"]: item for item in body_of(api.get("/queues"))["items"]}

    assert items["ghost"]["depth"] == 0
    assert set(items["ghost"]["counts"]) == STATES
    assert not any(items["ghost"]["counts"].values())


@pytest.mark.django_db
def test_queues_list_still_answers_from_postgres_when_redis_is_down(api, monkeypatch) -> None:
    enqueue("alpha")
    monkeypatch.setattr(selectors.broker, "client", lambda: _dead_redis())

    response = api.get("/queues")

    assert response.status_code == 200
    assert [(q["name"], q["depth"]) for q in body_of(response)["items"]] == [("alpha", 1)]


@pytest.mark.django_db
def test_queue_jobs_filter_by_queue_and_state(api) -> None:
    queued = {enqueue("alpha"), enqueue("alpha")}
    pending = enqueue("alpha", delay_ms=60_000)
    enqueue("beta")

    everything = body_of(api.get("/queues/alpha/jobs"))
    assert {i["id"] for i in everything["items"]} == queued | {pending}
    assert everything["total"] == 3
    assert all(i["queue"] == "alpha" for i in everything["items"])

    only_queued = body_of(api.get("/queues/alpha/jobs?status=QUEUED"))
    assert {i["id"] for i in only_queued["items"]} == queued
    assert only_queued["total"] == 2
    assert all(i["state"] == "QUEUED" for i in only_queued["items"])

    assert [i["id"] for i in body_of(api.get("/queues/alpha/jobs?state=PENDING"))["items"]] == [pending]
    assert body_of(api.get("/queues/gamma/jobs"))["items"] == []

    page = body_of(api.get("/queues/alpha/jobs?limit=1&offset=-3"))
    assert (len(page["items"]), page["limit"], page["offset"], page["total"]) == (1, 1, 0, 3)


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["jobs:ready", "a.b.c", "mail:eu.west-1_x"])
def test_queue_names_with_colons_and_dots_work_in_the_path(api, name) -> None:
    job_id = enqueue(name)
    enqueue("other")

    response = api.get(f"/queues/{name}/jobs?status=QUEUED")

    assert response.status_code == 200, response.content
    assert [i["id"] for i in body_of(response)["items"]] == [job_id]
    assert name in {q["name"] for q in body_of(api.get("/queues"))["items"]}


@pytest.mark.django_db
def test_queue_jobs_unknown_status_is_400(api) -> None:
    body = assert_error(api.get("/queues/alpha/jobs?status=NOPE"), 400, "validation_error")
    assert "state" in body["details"]


@pytest.mark.django_db
def test_queue_name_postgres_cannot_hold_is_400_not_500(api) -> None:
    enqueue("alpha")
    assert_error(api.get("/queues/al%00pha/jobs"), 400, "validation_error")


@pytest.mark.django_db
def test_queue_jobs_bad_limit_is_400(api) -> None:
    assert_error(api.get("/queues/alpha/jobs?limit=ten"), 400, "validation_error")


# -- health --------------------------------------------------------------------------------


def test_healthz_is_200(api) -> None:
    response = api.get("/healthz")
    assert response.status_code == 200
    assert body_of(response) == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_is_200_with_both_checks_ok(api) -> None:
    response = api.get("/readyz")
    assert response.status_code == 200
    body = body_of(response)
    assert body["checks"] == {"postgres": "ok", "redis": "ok"}


@pytest.mark.django_db
def test_readyz_is_503_when_redis_is_unreachable(api, monkeypatch) -> None:
    monkeypatch.setattr(views.broker, "_probe_client", _dead_redis)

    response = api.get("/readyz")

    body = assert_error(response, 503, "dependency_not_ready")
    assert body["details"]["postgres"] == "ok"
    assert body["details"]["redis"] != "ok"
    assert "127.0.0.1" not in json.dumps(body)  # no connection details leak
