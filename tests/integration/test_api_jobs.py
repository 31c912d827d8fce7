"""POST /jobs, POST /jobs/batch and the job reads, over HTTP against real Postgres and Redis.

Tests that look at Redis use ``transaction=True``: a job reaches its ready queue only after
the enqueue transaction commits, which never happens inside pytest-django's per-test atomic.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from jobs import services
from jobs.models import Job, JobEvent

JOB_KEYS = {
    "id", "queue", "jobType", "payload", "state", "priority", "attemptCount", "maxAttempts",
    "initialDelay", "backoff", "maxDelay", "jitter", "timeout", "idempotencyKey", "runAt",
    "nextRunAt", "queuedAt", "startedAt", "finishedAt", "leaseOwner", "leaseExpiresAt",
    "lastError", "result", "cancelRequested", "createdAt", "updatedAt",
}  # fmt: skip
EVENT_KEYS = {"id", "jobId", "type", "at", "attempt", "workerId", "details"}


def ready_key(queue: str) -> str:
    """The Redis ready ZSET of a queue, as DESIGN.md §5 names it."""
    return f"taskforge:queue:{queue}"


def post_job(api: APIClient, body: Any, **headers: str) -> Any:
    return api.post("/jobs", body, format="json", headers=headers or None)


def body_of(response: Any) -> Any:
    return json.loads(response.content)


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    assert response["Content-Type"].split(";")[0].strip() == "application/json"
    body = body_of(response)
    assert set(body) == {"code", "message", "details"}
    assert body["code"] == code
    assert isinstance(body["message"], str) and body["message"].strip()
    return body


def when(text: str) -> datetime:
    return datetime.fromisoformat(text)


# -- POST /jobs ----------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_create_job_returns_201_location_and_full_representation(api, redis_db) -> None:
    response = post_job(api, {"jobType": "tests.record", "payload": {"hello": "world"}})

    assert response.status_code == 201, response.content
    body = body_of(response)
    assert set(body) == JOB_KEYS
    assert response["Location"] == f"/jobs/{body['id']}"
    assert uuid.UUID(body["id"])
    assert body["jobType"] == "tests.record"
    assert body["payload"] == {"hello": "world"}
    assert body["state"] == "QUEUED"
    assert body["queue"] == settings.TASKFORGE.queue_name == "jobs:ready"
    assert body["attemptCount"] == 0
    assert body["priority"] == 0
    assert body["queuedAt"] is not None
    assert body["nextRunAt"] is None
    assert body["idempotencyKey"] is None
    assert body["cancelRequested"] is False
    # the settings' defaults (DESIGN.md §6: maxAttempts 5, 1 s, x2, 60 s, no jitter)
    assert (body["maxAttempts"], body["initialDelay"], body["backoff"], body["maxDelay"]) == (
        5,
        1000,
        2.0,
        60000,
    )
    assert body["jitter"] is False
    assert body["timeout"] is None

    assert Job.objects.filter(id=body["id"], state="QUEUED").count() == 1
    assert redis_db.zscore("taskforge:queue:jobs:ready", body["id"]) is not None

    # the Location really names the job
    again = api.get(response["Location"])
    assert again.status_code == 200
    assert body_of(again) == body


@pytest.mark.django_db(transaction=True)
def test_create_job_with_delay_is_pending_and_not_in_redis(api, redis_db) -> None:
    before = datetime.now(UTC)
    response = post_job(api, {"jobType": "tests.record", "delay": 60_000})
    after = datetime.now(UTC)

    assert response.status_code == 201, response.content
    body = body_of(response)
    assert body["state"] == "PENDING"
    assert body["queuedAt"] is None
    next_run = when(body["nextRunAt"])
    slack = timedelta(seconds=2)  # database clock against this process's clock
    assert before + timedelta(seconds=60) - slack <= next_run <= after + timedelta(seconds=60) + slack
    assert redis_db.zscore(ready_key(body["queue"]), body["id"]) is None
    assert Job.objects.get(id=body["id"]).state == "PENDING"


@pytest.mark.django_db(transaction=True)
def test_create_job_with_future_run_at_is_pending_at_that_instant(api, redis_db) -> None:
    run_at = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
    text = run_at.astimezone(timezone(timedelta(hours=2))).isoformat()
    assert text.endswith("+02:00")

    response = post_job(api, {"jobType": "tests.record", "runAt": text})

    assert response.status_code == 201, response.content
    body = body_of(response)
    assert body["state"] == "PENDING"
    assert when(body["nextRunAt"]) == run_at
    assert when(body["runAt"]) == run_at
    assert redis_db.zscore(ready_key(body["queue"]), body["id"]) is None


@pytest.mark.django_db(transaction=True)
def test_create_job_with_past_run_at_is_queued_at_once(api, redis_db) -> None:
    response = post_job(api, {"jobType": "tests.record", "runAt": "2020-01-01T00:00:00Z"})

    assert response.status_code == 201, response.content
    body = body_of(response)
    assert body["state"] == "QUEUED"
    assert redis_db.zscore(ready_key(body["queue"]), body["id"]) is not None


@pytest.mark.django_db(transaction=True)
def test_handler_defaults_apply_when_the_body_omits_them(api, redis_db) -> None:
    response = post_job(api, {"jobType": "tests.defaults"})

    assert response.status_code == 201, response.content
    body = body_of(response)
    assert body["queue"] == "special"
    assert (body["maxAttempts"], body["initialDelay"], body["backoff"]) == (2, 10, 3.0)
    assert body["maxDelay"] == 60000  # not set by the handler: the settings' default
    assert redis_db.zscore(ready_key("special"), body["id"]) is not None


@pytest.mark.django_db
def test_explicit_body_values_win_over_handler_defaults(api) -> None:
    response = post_job(
        api,
        {
            "jobType": "tests.defaults",
            "queue": "mine",
            "maxAttempts": 7,
            "initialDelay": 250,
            "backoff": 1.5,
            "maxDelay": 9000,
            "jitter": True,
            "timeout": 5000,
            "priority": -3,
        },
    )

    assert response.status_code == 201, response.content
    body = body_of(response)
    assert body["queue"] == "mine"
    assert (body["maxAttempts"], body["initialDelay"], body["backoff"], body["maxDelay"]) == (
        7,
        250,
        1.5,
        9000,
    )
    assert body["jitter"] is True
    assert body["timeout"] == 5000
    assert body["priority"] == -3
    stored = Job.objects.get(id=body["id"])
    assert (stored.queue, stored.max_attempts, stored.initial_delay_ms, stored.backoff) == (
        "mine",
        7,
        250,
        1.5,
    )


@pytest.mark.django_db
def test_trailing_slash_is_accepted(api) -> None:
    response = api.post("/jobs/", {"jobType": "tests.record"}, format="json")
    assert response.status_code == 201, response.content
    assert api.get(f"/jobs/{body_of(response)['id']}/").status_code == 200


# -- idempotency ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_idempotency_key_in_body_replays_the_same_job(api) -> None:
    body = {"jobType": "tests.record", "payload": {"n": 1}, "idempotencyKey": "order-42"}
    first = post_job(api, body)
    second = post_job(api, body)

    assert first.status_code == 201, first.content
    assert "Idempotent-Replayed" not in first
    assert second.status_code == 200, second.content
    assert second["Idempotent-Replayed"] == "true"
    assert body_of(second)["id"] == body_of(first)["id"]
    assert body_of(second)["idempotencyKey"] == "order-42"
    assert Job.objects.count() == 1
    assert JobEvent.objects.count() == 1  # one `created` event, not two


@pytest.mark.django_db
def test_idempotency_key_header_replays_the_same_job(api) -> None:
    body = {"jobType": "tests.record", "payload": {"n": 1}}
    first = post_job(api, body, **{"Idempotency-Key": "hdr-1"})
    second = post_job(api, body, **{"Idempotency-Key": "hdr-1"})

    assert first.status_code == 201, first.content
    assert body_of(first)["idempotencyKey"] == "hdr-1"
    assert second.status_code == 200, second.content
    assert second["Idempotent-Replayed"] == "true"
    assert body_of(second)["id"] == body_of(first)["id"]
    assert Job.objects.count() == 1


@pytest.mark.django_db
def test_header_and_body_key_are_the_same_key(api) -> None:
    first = post_job(api, {"jobType": "tests.record", "idempotencyKey": "same"})
    second = post_job(api, {"jobType": "tests.record"}, **{"Idempotency-Key": "same"})
    both = post_job(api, {"jobType": "tests.record", "idempotencyKey": "same"}, **{"Idempotency-Key": "same"})

    assert first.status_code == 201
    assert (second.status_code, both.status_code) == (200, 200)
    assert body_of(second)["id"] == body_of(both)["id"] == body_of(first)["id"]
    assert Job.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    "change",
    [{"payload": {"n": 2}}, {"jobType": "tests.defaults", "queue": "jobs:ready"}],
    ids=["other-payload", "other-job-type"],
)
def test_idempotency_key_reused_for_a_different_job_is_422(api, change) -> None:
    original = {"jobType": "tests.record", "payload": {"n": 1}, "idempotencyKey": "k-1"}
    first = post_job(api, original)
    assert first.status_code == 201, first.content
    job_id = body_of(first)["id"]
    before = Job.objects.values().get(id=job_id)

    response = post_job(api, {**original, **change})

    assert_error(response, 422, "idempotency_key_reused")
    assert Job.objects.count() == 1
    assert Job.objects.values().get(id=job_id) == before
    assert JobEvent.objects.count() == 1


@pytest.mark.django_db
def test_idempotency_key_reused_via_header_is_422(api) -> None:
    assert (
        post_job(
            api, {"jobType": "tests.record", "payload": {"a": 1}}, **{"Idempotency-Key": "h"}
        ).status_code
        == 201
    )
    response = post_job(api, {"jobType": "tests.record", "payload": {"a": 2}}, **{"Idempotency-Key": "h"})
    assert_error(response, 422, "idempotency_key_reused")
    assert Job.objects.count() == 1


@pytest.mark.django_db
def test_same_idempotency_key_in_another_queue_is_another_job(api) -> None:
    body = {"jobType": "tests.record", "idempotencyKey": "shared"}
    first = post_job(api, {**body, "queue": "a"})
    second = post_job(api, {**body, "queue": "b"})

    assert (first.status_code, second.status_code) == (201, 201)
    assert body_of(first)["id"] != body_of(second)["id"]
    assert Job.objects.filter(idempotency_key="shared").count() == 2


@pytest.mark.django_db
def test_header_and_body_idempotency_keys_that_differ_are_400(api) -> None:
    response = post_job(
        api, {"jobType": "tests.record", "idempotencyKey": "body"}, **{"Idempotency-Key": "header"}
    )
    body = assert_error(response, 400, "validation_error")
    assert "idempotencyKey" in body["details"]
    assert Job.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize("key", ["", "k" * 256], ids=["empty", "too-long"])
def test_bad_idempotency_key_header_is_400(api, key) -> None:
    response = post_job(api, {"jobType": "tests.record"}, **{"Idempotency-Key": key})
    assert_error(response, 400, "validation_error")
    assert Job.objects.count() == 0


# -- POST /jobs/batch ----------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_batch_creates_jobs_in_input_order(api, redis_db) -> None:
    jobs = [{"jobType": "tests.record", "payload": {"i": i}, "priority": i} for i in range(5)]
    jobs.append({"jobType": "tests.record", "payload": {"i": 5}, "delay": 60_000})

    response = api.post("/jobs/batch", {"jobs": jobs}, format="json")

    assert response.status_code == 201, response.content
    body = body_of(response)
    assert (body["created"], body["replayed"]) == (6, 0)
    assert [item["payload"] for item in body["items"]] == [{"i": i} for i in range(6)]
    assert all(set(item) == JOB_KEYS for item in body["items"])
    assert [item["state"] for item in body["items"]] == ["QUEUED"] * 5 + ["PENDING"]
    assert Job.objects.count() == 6
    ready = redis_db.zrange(ready_key("jobs:ready"), 0, -1)
    assert sorted(ready) == sorted(item["id"] for item in body["items"][:5])


@pytest.mark.django_db
def test_batch_replays_count_as_replayed(api) -> None:
    jobs = [{"jobType": "tests.record", "idempotencyKey": f"b-{i}"} for i in range(3)]
    first = api.post("/jobs/batch", {"jobs": jobs}, format="json")
    assert first.status_code == 201, first.content

    mixed = api.post(
        "/jobs/batch", {"jobs": [*jobs, {"jobType": "tests.record", "idempotencyKey": "b-3"}]}, format="json"
    )
    assert mixed.status_code == 201, mixed.content
    body = body_of(mixed)
    assert (body["created"], body["replayed"]) == (1, 3)
    assert [i["id"] for i in body["items"][:3]] == [i["id"] for i in body_of(first)["items"]]

    again = api.post("/jobs/batch", {"jobs": jobs}, format="json")
    assert again.status_code == 200, again.content
    assert (body_of(again)["created"], body_of(again)["replayed"]) == (0, 3)
    assert Job.objects.count() == 4


@pytest.mark.django_db
def test_batch_with_a_key_repeated_inside_it_creates_one_job(api) -> None:
    item = {"jobType": "tests.record", "payload": {"x": 1}, "idempotencyKey": "twice"}
    response = api.post("/jobs/batch", {"jobs": [item, item]}, format="json")

    assert response.status_code == 201, response.content
    body = body_of(response)
    assert (body["created"], body["replayed"]) == (1, 1)
    assert body["items"][0]["id"] == body["items"][1]["id"]
    assert Job.objects.count() == 1


@pytest.mark.django_db
def test_batch_of_exactly_1000_jobs_is_accepted(api) -> None:
    response = api.post("/jobs/batch", {"jobs": [{"jobType": "tests.record"}] * 1000}, format="json")
    assert response.status_code == 201, response.content
    assert body_of(response)["created"] == 1000
    assert Job.objects.count() == 1000


@pytest.mark.django_db
def test_batch_of_1001_jobs_is_400_and_creates_nothing(api) -> None:
    response = api.post("/jobs/batch", {"jobs": [{"jobType": "tests.record"}] * 1001}, format="json")
    body = assert_error(response, 400, "validation_error")
    assert "jobs" in body["details"]
    assert Job.objects.count() == 0


@pytest.mark.django_db
def test_batch_with_one_invalid_item_is_400_and_creates_nothing(api) -> None:
    services.enqueue_job("tests.record")  # an unrelated job, to show the count is unchanged
    before = Job.objects.count()
    jobs = [
        {"jobType": "tests.record"},
        {"jobType": "tests.record"},
        {"jobType": "tests.record", "priority": "high"},
        {"jobType": "tests.record"},
    ]

    response = api.post("/jobs/batch", {"jobs": jobs}, format="json")

    body = assert_error(response, 400, "validation_error")
    per_item = body["details"]["jobs"]  # problems by index, only for the bad items
    assert set(per_item) == {"2"}
    assert "priority" in per_item["2"]
    assert Job.objects.count() == before


@pytest.mark.django_db
def test_batch_item_refused_by_the_service_names_its_index(api) -> None:
    jobs = [{"jobType": "tests.record"}, {"jobType": "tests.record", "queue": "bad queue name"}]
    response = api.post("/jobs/batch", {"jobs": jobs}, format="json")
    body = assert_error(response, 400, "validation_error")
    assert body["details"]["index"] == 1
    assert "queue" in body["details"]
    assert Job.objects.count() == 0


@pytest.mark.django_db
def test_batch_with_an_unknown_job_type_is_400_and_creates_nothing(api) -> None:
    jobs = [{"jobType": "tests.record"}, {"jobType": "no.such.type"}, {"jobType": "tests.record"}]
    response = api.post("/jobs/batch", {"jobs": jobs}, format="json")
    body = assert_error(response, 400, "unknown_job_type")
    assert body["details"]["index"] == 1
    assert Job.objects.count() == 0


@pytest.mark.django_db
def test_batch_with_a_too_large_payload_is_413_and_creates_nothing(api) -> None:
    big = "x" * settings.TASKFORGE.max_payload_bytes
    jobs = [{"jobType": "tests.record"}, {"jobType": "tests.record", "payload": {"big": big}}]
    response = api.post("/jobs/batch", {"jobs": jobs}, format="json")
    body = assert_error(response, 413, "payload_too_large")
    assert body["details"]["index"] == 1
    assert Job.objects.count() == 0


@pytest.mark.django_db
def test_batch_reusing_a_key_for_another_payload_is_422_and_creates_nothing(api) -> None:
    assert (
        post_job(api, {"jobType": "tests.record", "payload": {"v": 1}, "idempotencyKey": "x"}).status_code
        == 201
    )
    jobs = [
        {"jobType": "tests.record"},
        {"jobType": "tests.record", "payload": {"v": 2}, "idempotencyKey": "x"},
    ]
    response = api.post("/jobs/batch", {"jobs": jobs}, format="json")
    assert_error(response, 422, "idempotency_key_reused")
    assert Job.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body",
    [
        {"jobs": []},
        {},
        {"jobs": "nope"},
        {"jobs": None},
        {"jobs": [{"jobType": "tests.record"}, 1]},
        {"jobs": [{"jobType": "tests.record"}], "extra": 1},
        [],
    ],
    ids=["empty-list", "no-jobs", "not-a-list", "null", "item-not-object", "unknown-field", "bare-list"],
)
def test_batch_bad_envelope_is_400(api, body) -> None:
    response = api.post("/jobs/batch", body, format="json")
    assert_error(response, 400, "validation_error")
    assert Job.objects.count() == 0


# -- reads ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_get_job_returns_its_representation(api) -> None:
    created = body_of(post_job(api, {"jobType": "tests.record", "payload": [1, "two", None]}))
    response = api.get(f"/jobs/{created['id']}")
    assert response.status_code == 200
    body = body_of(response)
    assert set(body) == JOB_KEYS
    assert body["id"] == created["id"]
    assert body["payload"] == [1, "two", None]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path",
    [
        "/jobs/not-a-uuid",
        "/jobs/5e9d17af-c990-4868-9aa2-f81e8051838c",
        "/jobs/5e9d17af-c990-4868-9aa2-f81e8051838c/events",
        "/jobs/not-a-uuid/events",
        "/jobs/123",
    ],
)
def test_unknown_or_malformed_job_id_is_404(api, path) -> None:
    assert_error(api.get(path), 404, "not_found")


@pytest.mark.django_db
def test_events_are_oldest_first_with_contract_keys(api) -> None:
    job_id = body_of(post_job(api, {"jobType": "tests.record"}))["id"]
    claimed = services.claim_jobs(worker_id="worker-a", ids=[uuid.UUID(job_id)], lease_seconds=30)
    assert len(claimed) == 1

    response = api.get(f"/jobs/{job_id}/events")

    assert response.status_code == 200
    body = body_of(response)
    assert set(body) == {"items"}
    items = body["items"]
    assert all(set(item) == EVENT_KEYS for item in items)
    assert [item["type"] for item in items] == ["created", "claimed"]
    assert all(item["jobId"] == job_id for item in items)
    assert items[0]["id"] < items[1]["id"]
    assert (items[0]["attempt"], items[0]["workerId"]) == (0, None)
    assert (items[1]["attempt"], items[1]["workerId"]) == (1, "worker-a")
    assert when(items[0]["at"]) <= when(items[1]["at"])


@pytest.mark.django_db
def test_events_belong_to_their_job_only(api) -> None:
    a = body_of(post_job(api, {"jobType": "tests.record"}))["id"]
    post_job(api, {"jobType": "tests.record"})
    items = body_of(api.get(f"/jobs/{a}/events"))["items"]
    assert [(i["jobId"], i["type"]) for i in items] == [(a, "created")]


def _ids(response: Any) -> list[str]:
    assert response.status_code == 200, response.content
    return [item["id"] for item in body_of(response)["items"]]


@pytest.mark.django_db
def test_list_filters(api) -> None:
    queued = body_of(post_job(api, {"jobType": "tests.record", "queue": "q1"}))["id"]
    pending = body_of(post_job(api, {"jobType": "tests.record", "queue": "q1", "delay": 60_000}))["id"]
    other_type = body_of(post_job(api, {"jobType": "tests.defaults"}))["id"]  # queue "special"
    keyed = body_of(post_job(api, {"jobType": "tests.record", "queue": "q2", "idempotencyKey": "find-me"}))[
        "id"
    ]

    assert sorted(_ids(api.get("/jobs"))) == sorted([queued, pending, other_type, keyed])
    assert _ids(api.get("/jobs?state=PENDING")) == [pending]
    assert _ids(api.get("/jobs?status=PENDING")) == [pending]
    assert _ids(api.get("/jobs?status=pending")) == [pending]
    assert sorted(_ids(api.get("/jobs?state=QUEUED"))) == sorted([queued, other_type, keyed])
    assert _ids(api.get("/jobs?state=RUNNING")) == []
    assert sorted(_ids(api.get("/jobs?queue=q1"))) == sorted([queued, pending])
    assert _ids(api.get("/jobs?queue=q1&state=QUEUED")) == [queued]
    assert _ids(api.get("/jobs?jobType=tests.defaults")) == [other_type]
    assert _ids(api.get(f"/jobs?q={queued}")) == [queued]
    assert _ids(api.get("/jobs?q=find-me")) == [keyed]
    assert _ids(api.get("/jobs?q=nothing-matches")) == []
    assert _ids(api.get("/jobs?queue=nope")) == []

    body = body_of(api.get("/jobs?queue=q1"))
    assert (body["total"], body["limit"], body["offset"]) == (2, 50, 0)
    assert all(set(item) == JOB_KEYS for item in body["items"])


@pytest.mark.django_db
@pytest.mark.parametrize("query", ["state=BOGUS", "status=done", "state=queued%00"])
def test_list_unknown_state_is_400(api, query) -> None:
    body = assert_error(api.get(f"/jobs?{query}"), 400, "validation_error")
    assert "state" in body["details"]


@pytest.mark.django_db
@pytest.mark.parametrize("query", ["limit=abc", "offset=abc", "limit=1.5", "offset=%00"])
def test_list_non_integer_paging_is_400(api, query) -> None:
    assert_error(api.get(f"/jobs?{query}"), 400, "validation_error")


@pytest.mark.django_db
def test_list_paging_defaults_clamps_and_total(api) -> None:
    response = api.post("/jobs/batch", {"jobs": [{"jobType": "tests.record"}] * 60}, format="json")
    assert response.status_code == 201
    all_ids = {item["id"] for item in body_of(response)["items"]}

    first = body_of(api.get("/jobs"))
    assert (len(first["items"]), first["total"], first["limit"], first["offset"]) == (50, 60, 50, 0)
    rest = body_of(api.get("/jobs?offset=50"))
    assert (len(rest["items"]), rest["total"], rest["offset"]) == (10, 60, 50)
    paged = [i["id"] for i in first["items"]] + [i["id"] for i in rest["items"]]
    assert len(paged) == len(set(paged)) and set(paged) == all_ids  # stable order, no gaps

    clamped = body_of(api.get("/jobs?limit=9999&offset=-5"))
    assert (clamped["limit"], clamped["offset"], clamped["total"]) == (200, 0, 60)
    assert len(clamped["items"]) == 60

    small = body_of(api.get("/jobs?limit=7&offset=55"))
    assert (len(small["items"]), small["limit"], small["offset"], small["total"]) == (5, 7, 55, 60)

    beyond = body_of(api.get("/jobs?offset=1000"))
    assert (beyond["items"], beyond["total"]) == ([], 60)


@pytest.mark.django_db
@pytest.mark.parametrize("query", ["q=%00", "q=a%00b", "queue=jobs%00", "jobType=%00tests.record"])
def test_list_filter_values_postgres_cannot_hold_are_400_not_500(api, query) -> None:
    post_job(api, {"jobType": "tests.record"})
    assert_error(api.get(f"/jobs?{query}"), 400, "validation_error")


@pytest.mark.django_db
@pytest.mark.parametrize("offset", ["9223372036854775807", "99999999999999999999", "1" + "0" * 40])
def test_list_absurd_offset_is_an_empty_page_not_500(api, offset) -> None:
    post_job(api, {"jobType": "tests.record"})
    body = body_of(api.get(f"/jobs?offset={offset}"))
    assert (body["items"], body["total"]) == ([], 1)


@pytest.mark.django_db(transaction=True)
def test_list_is_newest_first(api) -> None:
    ids = [body_of(post_job(api, {"jobType": "tests.record", "payload": {"i": i}}))["id"] for i in range(4)]
    assert _ids(api.get("/jobs")) == ids[::-1]
    assert _ids(api.get("/jobs?limit=2&offset=1")) == ids[::-1][1:3]
