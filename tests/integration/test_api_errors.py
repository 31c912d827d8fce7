"""Bad input and the one error shape: every refusal is a clear 4xx that changes nothing.

DESIGN.md §1.6 and §7: ``{"code", "message", "details"}`` with application/json, everywhere
(DRF errors, parse errors, Django-level 404/405/500), and every response carries X-Request-ID.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from jobs import selectors
from jobs.models import Job, JobEvent
from tests.conftest import api_client

JOB = {"jobType": "tests.record"}
HEX_ID = re.compile(r"^[0-9a-f]{32}$")
# DESIGN.md §7: the only codes a client ever has to handle.
CONTRACT_CODES = {
    "validation_error", "invalid_json", "unknown_job_type", "payload_too_large",
    "unsupported_media_type", "not_found", "method_not_allowed", "invalid_state_transition",
    "idempotency_key_reused", "not_authenticated", "permission_denied", "throttled",
    "dependency_not_ready", "internal_error",
}  # fmt: skip


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    """The contract's error shape, with this status and code."""
    assert response.status_code == status, response.content[:500]
    assert response["Content-Type"].split(";")[0].strip() == "application/json"
    body = json.loads(response.content)
    assert set(body) == {"code", "message", "details"}, body
    assert body["code"] == code, body
    assert code in CONTRACT_CODES
    assert isinstance(body["message"], str) and body["message"].strip()
    return body


def assert_nothing_created() -> None:
    assert Job.objects.count() == 0
    assert JobEvent.objects.count() == 0


def post_raw(api: APIClient, body: str | bytes, content_type: str = "application/json") -> Any:
    return api.generic("POST", "/jobs", body, content_type=content_type)


def post_job(api: APIClient, body: Any) -> Any:
    return api.post("/jobs", body, format="json")


# -- malformed bodies ----------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "raw",
    [
        '{"jobType": "tests.record",',
        "{jobType: 'tests.record'}",
        "not json",
        '{"jobType": NaN}',
        b"\xff\xfe{}",
    ],
    ids=["truncated", "single-quotes", "text", "nan", "not-utf8"],
)
def test_malformed_json_is_400_invalid_json(api, raw) -> None:
    assert_error(post_raw(api, raw), 400, "invalid_json")
    assert_nothing_created()


@pytest.mark.django_db
@pytest.mark.parametrize("raw", ['[{"jobType": "tests.record"}]', '"tests.record"', "42", "null", "true"])
def test_json_body_that_is_not_an_object_is_400_validation_error(api, raw) -> None:
    assert_error(post_raw(api, raw), 400, "validation_error")
    assert_nothing_created()


@pytest.mark.django_db
def test_empty_body_is_400_validation_error(api) -> None:
    body = assert_error(post_raw(api, ""), 400, "validation_error")
    assert "jobType" in body["details"]
    assert_nothing_created()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"]
)
def test_wrong_content_type_is_415(api, content_type) -> None:
    assert_error(post_raw(api, json.dumps(JOB), content_type), 415, "unsupported_media_type")
    assert_nothing_created()


@pytest.mark.django_db
def test_deeply_nested_json_body_is_400_not_500(api) -> None:
    depth = 100_000
    raw = '{"jobType": "tests.record", "payload": ' + "[" * depth + "]" * depth + "}"
    assert_error(post_raw(api, raw), 400, "invalid_json")
    assert_nothing_created()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("depth", "code"),
    [
        # the service refuses what Postgres' jsonb might choke on ...
        (66, "validation_error"),
        (100, "validation_error"),
        (900, "validation_error"),
        # ... and Python's json refuses what would exhaust the stack
        (2_000, "invalid_json"),
    ],
)
def test_nested_payload_beyond_the_depth_limit_is_400_not_500(api, depth, code) -> None:
    raw = '{"jobType": "tests.record", "payload": ' + "[" * depth + "]" * depth + "}"
    assert_error(post_raw(api, raw), 400, code)
    assert_nothing_created()


@pytest.mark.django_db
def test_nested_payload_within_the_depth_limit_is_accepted(api) -> None:
    depth = 60
    payload = json.loads("[" * depth + "]" * depth)
    response = post_job(api, {**JOB, "payload": payload})
    assert response.status_code == 201, response.content
    assert Job.objects.get().payload == payload


# -- fields --------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**JOB, "prority": 1}, "prority"),
        ({**JOB, "max_attempts": 3}, "max_attempts"),
        ({"job_type": "tests.record"}, "job_type"),
        ({**JOB, "id": "00000000-0000-0000-0000-000000000000"}, "id"),
        ({**JOB, "state": "SUCCEEDED"}, "state"),
    ],
    ids=["typo", "snake-case", "snake-job-type", "id", "state"],
)
def test_unknown_fields_are_400_and_named(api, body, field) -> None:
    details = assert_error(post_job(api, body), 400, "validation_error")["details"]
    assert field in details
    assert_nothing_created()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("priority", "high"),
        ("priority", True),
        ("priority", "5"),
        ("priority", None),
        ("maxAttempts", 2.5),
        ("maxAttempts", "3"),
        ("initialDelay", [1000]),
        ("backoff", "2"),
        ("backoff", False),
        ("maxDelay", {"ms": 1}),
        ("jitter", "yes"),
        ("jitter", 1),
        ("jitter", None),
        ("jobType", 123),
        ("jobType", ["tests.record"]),
        ("jobType", None),
        ("jobType", ""),
        ("queue", 7),
        ("queue", ""),
        ("idempotencyKey", 5),
        ("idempotencyKey", ""),
        ("runAt", 12345),
        ("runAt", "2030-01-01T00:00:00"),
        ("runAt", "2030-01-01"),
        ("runAt", "tomorrow"),
        ("runAt", "2030-02-30T00:00:00Z"),
        ("runAt", "0001-01-01T00:00:00+01:00"),
        ("runAt", "9999-12-31T23:59:59-01:00"),
        ("delay", "100"),
        ("timeout", "1s"),
    ],
)
def test_wrong_types_are_400_validation_error(api, field, value) -> None:
    details = assert_error(post_job(api, {**JOB, field: value}), 400, "validation_error")["details"]
    assert field in details, details
    assert_nothing_created()


@pytest.mark.django_db
def test_missing_job_type_is_400_validation_error(api) -> None:
    details = assert_error(post_job(api, {"payload": {}}), 400, "validation_error")["details"]
    assert "jobType" in details
    assert_nothing_created()


@pytest.mark.django_db
@pytest.mark.parametrize("job_type", ["no.such.type", "os.system", "tests.handlers.record", "TESTS.RECORD"])
def test_unknown_job_type_is_400(api, job_type) -> None:
    body = assert_error(post_job(api, {"jobType": job_type}), 400, "unknown_job_type")
    assert body["details"] is not None
    assert_nothing_created()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("maxAttempts", 0),
        ("maxAttempts", 5000),
        ("backoff", 0.5),
        ("backoff", 1000),
        ("backoff", 1e400),  # JSON number that parses to infinity
        ("initialDelay", -1),
        ("maxDelay", 10**12),
        ("maxDelay", -1),
        ("priority", 101),
        ("priority", -101),
        ("priority", 10**30),
        ("timeout", 0),
        ("timeout", -1),
        ("delay", -5),
        ("delay", 10**13),
    ],
)
def test_out_of_range_values_are_400(api, field, value) -> None:
    # json.dumps writes infinity as the token Infinity; send the number 1e400 instead
    raw = json.dumps({**JOB, field: value}).replace("Infinity", "1e400")
    details = assert_error(post_raw(api, raw), 400, "validation_error")["details"]
    assert field in details
    assert_nothing_created()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("field", "value"),
    [("priority", 100), ("priority", -100), ("maxAttempts", 1), ("maxAttempts", 1000), ("backoff", 1),
     ("backoff", 100), ("initialDelay", 0), ("timeout", 1), ("delay", 0), ("maxAttempts", 3.0)],
)  # fmt: skip
def test_boundary_values_are_accepted(api, field, value) -> None:
    response = post_job(api, {**JOB, field: value})
    assert response.status_code == 201, response.content
    body = json.loads(response.content)
    if field == "delay":  # not part of the representation: a zero delay is due now
        assert body["state"] == "QUEUED"
    else:
        assert body[field] == value


@pytest.mark.django_db
def test_run_at_and_delay_together_are_400(api) -> None:
    body = {**JOB, "runAt": "2030-01-01T00:00:00Z", "delay": 1000}
    assert_error(post_job(api, body), 400, "validation_error")
    assert_nothing_created()


@pytest.mark.django_db
@pytest.mark.parametrize("queue", ["has space", "slash/queue", "é", "q" * 101, "semi;colon"])
def test_bad_queue_names_are_400(api, queue) -> None:
    assert_error(post_job(api, {**JOB, "queue": queue}), 400, "validation_error")
    assert_nothing_created()


# -- payload content and size ----------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "raw",
    [
        '{"jobType": "tests.record", "payload": {"s": "a\\u0000b"}}',
        '{"jobType": "tests.record", "payload": {"a\\u0000": 1}}',
        '{"jobType": "tests.record", "payload": ["x", ["a\\u0000b"]]}',
        '{"jobType": "tests.re\\u0000cord"}',
        '{"jobType": "tests.record", "idempotencyKey": "k\\u0000"}',
        '{"jobType": "tests.record", "queue": "q\\u0000"}',
    ],
    ids=["payload-value", "payload-key", "payload-nested", "job-type", "idempotency-key", "queue"],
)
def test_nul_characters_are_400_not_500(api, raw) -> None:
    assert_error(post_raw(api, raw), 400, "validation_error")
    assert_nothing_created()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ('{"jobType": "tests.record", "payload": {"s": "\\ud800"}}', "validation_error"),
        ('{"jobType": "tests.record", "payload": {"\\udfff": 1}}', "validation_error"),
        ('{"jobType": "tests.record", "idempotencyKey": "k\\ud800"}', "validation_error"),
        ('{"jobType": "tests.\\ud800"}', "validation_error"),
    ],
    ids=["payload-value", "payload-key", "idempotency-key", "job-type"],
)
def test_lone_surrogates_are_400_not_500(api, raw, code) -> None:
    """JSON can escape half a UTF-16 pair; neither Postgres text nor jsonb can store one."""
    assert_error(post_raw(api, raw), 400, code)
    assert_nothing_created()


@pytest.mark.django_db
def test_non_finite_number_in_payload_is_400(api) -> None:
    raw = '{"jobType": "tests.record", "payload": {"big": 1e400}}'
    assert_error(post_raw(api, raw), 400, "validation_error")
    assert_nothing_created()


@pytest.mark.django_db
@pytest.mark.parametrize("char", ["x", "é"], ids=["ascii", "two-byte"])
def test_payload_at_the_limit_is_accepted_and_one_character_more_is_413(api, char) -> None:
    """The limit counts the UTF-8 bytes Postgres stores (not JSON's 6-byte \\u escapes)."""
    limit = settings.TASKFORGE.max_payload_bytes
    wrapper = len(json.dumps({"d": ""}, separators=(",", ":")))
    width = len(char.encode())
    exact = {"d": char * ((limit - wrapper) // width)}
    assert wrapper + len(exact["d"]) * width == limit

    assert post_job(api, {**JOB, "payload": exact}).status_code == 201
    over = {"d": exact["d"] + char}
    body = assert_error(post_job(api, {**JOB, "payload": over}), 413, "payload_too_large")
    assert body["details"] == {"size": limit + width, "limit": limit}
    assert Job.objects.count() == 1


@pytest.mark.django_db
def test_payload_over_default_limit_is_413(api) -> None:
    assert settings.TASKFORGE.max_payload_bytes == 1 << 20  # the default under test
    response = post_job(api, {**JOB, "payload": {"blob": "x" * (1 << 20)}})
    assert_error(response, 413, "payload_too_large")
    assert_nothing_created()


@pytest.mark.django_db
def test_request_body_over_the_upload_limit_is_413(api) -> None:
    """The payload itself is tiny: only the request limit can refuse this body."""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    assert limit == 16 << 20
    raw = '{"jobType": "tests.record",' + " " * limit + '"payload": {}}'
    assert_error(post_raw(api, raw), 413, "payload_too_large")
    assert_nothing_created()


@pytest.mark.django_db
def test_batch_body_over_the_upload_limit_is_413(api) -> None:
    """1,000 jobs of 17 KiB each: every payload is small, the whole request is not."""
    item = {**JOB, "payload": {"d": "x" * (17 << 10)}}
    response = api.post("/jobs/batch", {"jobs": [item] * 1000}, format="json")
    assert_error(response, 413, "payload_too_large")
    assert_nothing_created()


# -- errors outside the job views ----------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/nope"),
        ("post", "/nope"),
        ("get", "/jobs/x/y/z"),
        ("get", "/queues/x/nope"),
        ("get", "/api/nothing"),
    ],
)
def test_unrouted_paths_are_404_json(api, method, path) -> None:
    assert_error(getattr(api, method)(path), 404, "not_found")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("delete", "/jobs/00000000-0000-0000-0000-000000000001"),
        ("put", "/jobs/00000000-0000-0000-0000-000000000001"),
        ("patch", "/jobs/00000000-0000-0000-0000-000000000001"),
        ("put", "/jobs"),
        ("delete", "/jobs"),
        ("get", "/jobs/batch"),
        ("post", "/jobs/00000000-0000-0000-0000-000000000001/events"),
        ("post", "/queues"),
        ("post", "/healthz"),
        ("delete", "/readyz"),
    ],
)
def test_wrong_method_is_405_json(api, method, path) -> None:
    response = getattr(api, method)(path)
    assert_error(response, 405, "method_not_allowed")
    assert method.upper() not in response["Allow"]


@pytest.fixture
def crashing_api(monkeypatch, db) -> APIClient:
    """A view whose selector fails unexpectedly; the client returns the 500 instead of raising."""

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret-detail-that-must-not-leak")

    monkeypatch.setattr(selectors, "get_job", boom)
    monkeypatch.setattr(selectors, "job_page", boom)
    assert settings.DEBUG is False
    return api_client("operator", raise_request_exception=False)


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/jobs/00000000-0000-0000-0000-000000000001", "/jobs"])
def test_unexpected_exception_is_500_internal_error_json(crashing_api, path) -> None:
    response = crashing_api.get(path, headers={"X-Request-ID": "crash-1"})
    assert_error(response, 500, "internal_error")
    assert b"secret-detail-that-must-not-leak" not in response.content
    assert b"Traceback" not in response.content
    assert response["X-Request-ID"] == "crash-1"


@pytest.mark.parametrize("path", ["/healthz", "/jobs", "/nope"])
def test_disallowed_host_is_400_json_with_a_contract_code(api, path) -> None:
    response = api.get(path, headers={"Host": "evil.example"})
    assert_error(response, 400, "validation_error")
    assert HEX_ID.fullmatch(response["X-Request-ID"])


# -- X-Request-ID --------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("get", "/healthz", None, 200),
        ("post", "/jobs", JOB, 201),
        ("get", "/jobs", None, 200),
        ("post", "/jobs", {"jobType": 1}, 400),
        ("get", "/jobs/missing", None, 404),
        ("get", "/nope", None, 404),
        ("delete", "/jobs", None, 405),
        ("post", "/jobs", {**JOB, "payload": {"b": "x" * (1 << 20)}}, 413),
    ],
)
def test_every_response_carries_a_request_id(api, method, path, body, status) -> None:
    kwargs = {"format": "json"} if body is not None else {}
    response = getattr(api, method)(path, body, **kwargs) if body is not None else getattr(api, method)(path)
    assert response.status_code == status
    assert HEX_ID.fullmatch(response["X-Request-ID"])

    echoed = getattr(api, method)(path, body, headers={"X-Request-ID": "abc-123"}, **kwargs)
    assert echoed.status_code == status
    assert echoed["X-Request-ID"] == "abc-123"


@pytest.mark.django_db
def test_server_error_carries_a_generated_request_id(crashing_api) -> None:
    response = crashing_api.get("/jobs")
    assert response.status_code == 500
    assert HEX_ID.fullmatch(response["X-Request-ID"])


@pytest.mark.parametrize(
    "incoming",
    [
        "abc 123",
        "x" * 300,
        "a" * 129,
        "<script>",
        "id;drop",
        "ünïcode",
        "",
        "abc-123\n",
        "a\r\nSet-Cookie: x=1",
    ],
    ids=[
        "space",
        "300-chars",
        "129-chars",
        "markup",
        "semicolon",
        "non-ascii",
        "empty",
        "trailing-lf",
        "crlf",
    ],
)
def test_insane_incoming_request_id_is_replaced(api, incoming) -> None:
    response = api.get("/healthz", headers={"X-Request-ID": incoming})
    assert response.status_code == 200
    assert response["X-Request-ID"] != incoming
    assert HEX_ID.fullmatch(response["X-Request-ID"])


@pytest.mark.parametrize("incoming", ["abc-123", "a" * 128, "A.b_c-9", "0af7651916cd43dd8448eb211c80319c"])
def test_sane_incoming_request_id_is_echoed(api, incoming) -> None:
    assert api.get("/healthz", headers={"X-Request-ID": incoming})["X-Request-ID"] == incoming


def test_generated_request_ids_differ(api) -> None:
    ids = {api.get("/healthz")["X-Request-ID"] for _ in range(5)}
    assert len(ids) == 5


@pytest.mark.django_db
def test_postgres_unavailable_is_503_not_500(api, monkeypatch) -> None:
    """A dropped database answers 503 dependency_not_ready, so clients know to retry."""
    from django.db import OperationalError

    def database_down(*args: object, **kwargs: object) -> None:
        raise OperationalError("connection refused")

    monkeypatch.setattr(selectors, "job_page", database_down)
    response = api.get("/jobs")
    body = assert_error(response, 503, "dependency_not_ready")
    assert body["details"] == {"postgres": "unavailable"}
