"""The periodic schedules API: /schedules CRUD, validation, run now and roles."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone

from jobs.models import Job
from jobs.states import JobState
from scheduler.cron import Cron
from scheduler.models import PeriodicSchedule
from scheduler.schedules import sync_declared_schedules
from tests.conftest import api_client
from workers import keys

pytestmark = pytest.mark.django_db

S = timedelta(seconds=1)
MINIMAL = {"name": "cleanup", "cron": "*/5 * * * *", "jobType": "tests.record"}


def body(response: Any) -> Any:
    return json.loads(response.content)


def error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    payload = body(response)
    assert set(payload) == {"code", "message", "details"} and payload["code"] == code, payload
    return payload["details"]


def create(api, **fields: Any) -> dict[str, Any]:
    response = api.post("/schedules", {**MINIMAL, **fields}, format="json")
    assert response.status_code == 201, response.content
    return body(response)


def test_create_fills_the_defaults_and_plans_the_first_tick(api) -> None:
    response = api.post("/schedules", MINIMAL, format="json")
    assert response.status_code == 201, response.content
    created = body(response)
    assert response["Location"] == f"/schedules/{created['id']}"
    assert created | {"id": None, "nextFireAt": None, "createdAt": None, "updatedAt": None} == {
        "id": None,
        "name": "cleanup",
        "cron": "*/5 * * * *",
        "timezone": "UTC",
        "jobType": "tests.record",
        "payload": {},
        "queue": None,
        "priority": 0,
        "enabled": True,
        "misfirePolicy": "run_once",
        "catchUpLimit": 10,
        "jitter": 0,
        "declared": False,
        "nextFireAt": None,
        "lastFiredAt": None,
        "lastJobId": None,
        "lastError": None,
        "createdAt": None,
        "updatedAt": None,
    }
    next_fire_at = datetime.fromisoformat(created["nextFireAt"])
    assert datetime.fromisoformat(created["createdAt"]) < next_fire_at
    assert next_fire_at <= Cron.parse("*/5 * * * *").next_after(timezone.now())
    assert next_fire_at.minute % 5 == 0 and next_fire_at.second == 0


def test_every_field_round_trips_and_the_tick_is_in_the_timezone(api) -> None:
    created = create(
        api,
        name="morning.report:v2",
        cron="30 0 9 * * *",
        timezone="Europe/Berlin",
        payload={"report": ["daily"]},
        queue="reports",
        priority=-5,
        enabled=True,
        misfirePolicy="catch_up",
        catchUpLimit=3,
        jitter=1500,
    )
    fetched = body(api.get(f"/schedules/{created['id']}"))
    assert fetched == created
    assert fetched["queue"] == "reports" and fetched["catchUpLimit"] == 3 and fetched["jitter"] == 1500
    local = datetime.fromisoformat(created["nextFireAt"]).astimezone(
        Cron.parse("* * * * *", "Europe/Berlin").zone
    )
    assert (local.hour, local.minute, local.second) == (9, 0, 30)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"cron": "61 * * * *"}, "cron"),
        ({"cron": "* * * *"}, "cron"),
        ({"cron": "0 0 30 2 *"}, "cron"),  # never fires
        ({"cron": 5}, "cron"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"timezone": "../etc"}, "timezone"),
        ({"name": ""}, "name"),
        ({"name": "has space"}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"queue": "bad queue"}, "queue"),
        ({"queue": "a/b"}, "queue"),
        ({"priority": 101}, "priority"),
        ({"priority": "1"}, "priority"),
        ({"enabled": "yes"}, "enabled"),
        ({"misfirePolicy": "sometimes"}, "misfirePolicy"),
        ({"catchUpLimit": 0}, "catchUpLimit"),
        ({"catchUpLimit": 1001}, "catchUpLimit"),
        ({"jitter": -1}, "jitter"),
        ({"jitter": 3_600_001}, "jitter"),
        ({"payload": {"text": "nul \x00"}}, "payload"),
        ({"colour": "blue"}, "colour"),  # unknown fields are refused
    ],
)
def test_invalid_fields_are_400_validation_error_naming_the_field(api, fields, field) -> None:
    details = error(api.post("/schedules", {**MINIMAL, **fields}, format="json"), 400, "validation_error")
    assert field in details, details
    assert not PeriodicSchedule.objects.exists()


@pytest.mark.parametrize("missing", ["name", "cron", "jobType"])
def test_name_cron_and_job_type_are_required(api, missing) -> None:
    fields = {k: v for k, v in MINIMAL.items() if k != missing}
    assert missing in error(api.post("/schedules", fields, format="json"), 400, "validation_error")


def test_an_unknown_job_type_is_unknown_job_type(api) -> None:
    details = error(
        api.post("/schedules", {**MINIMAL, "jobType": "nope"}, format="json"), 400, "unknown_job_type"
    )
    assert details == {"jobType": "nope"}


def test_names_are_unique(api) -> None:
    create(api)
    details = error(
        api.post("/schedules", {**MINIMAL, "cron": "* * * * *"}, format="json"), 400, "validation_error"
    )
    assert list(details) == ["name"]
    assert PeriodicSchedule.objects.count() == 1


def test_a_payload_over_the_limit_is_413(api, settings) -> None:
    import dataclasses

    settings.TASKFORGE = dataclasses.replace(settings.TASKFORGE, max_payload_bytes=100)
    response = api.post("/schedules", {**MINIMAL, "payload": {"blob": "x" * 200}}, format="json")
    error(response, 413, "payload_too_large")


def test_list_is_a_page_by_name(api) -> None:
    for name in ("c", "a", "b"):
        create(api, name=name)
    page = body(api.get("/schedules?limit=2&offset=1"))
    assert [s["name"] for s in page["items"]] == ["b", "c"]
    assert (page["total"], page["limit"], page["offset"]) == (3, 2, 1)
    assert body(api.get("/schedules/"))["total"] == 3
    error(api.get("/schedules?limit=two"), 400, "validation_error")


@pytest.mark.parametrize("schedule_id", ["6d0f3d2e-5b7a-4c1e-9a55-0c5e5e1f2a10", "not-a-uuid"])
@pytest.mark.parametrize(("method", "suffix"), [("get", ""), ("patch", ""), ("delete", ""), ("post", "/run")])
def test_unknown_or_malformed_ids_are_404(api, schedule_id, method, suffix) -> None:
    response = getattr(api, method)(f"/schedules/{schedule_id}{suffix}", {}, format="json")
    error(response, 404, "not_found")


def test_patch_changes_fields_and_a_new_cron_replans(api) -> None:
    created = create(api)
    response = api.patch(f"/schedules/{created['id']}", {"cron": "0 0 * * * *", "priority": 7}, format="json")
    assert response.status_code == 200, response.content
    patched = body(response)
    assert patched["cron"] == "0 0 * * * *" and patched["priority"] == 7
    assert datetime.fromisoformat(patched["nextFireAt"]).minute == 0
    assert patched["updatedAt"] >= created["updatedAt"] and patched["createdAt"] == created["createdAt"]


def test_disabling_clears_the_next_tick_and_enabling_starts_from_now(api) -> None:
    created = create(api, cron="* * * * * *")
    disabled = body(api.patch(f"/schedules/{created['id']}", {"enabled": False}, format="json"))
    assert disabled["enabled"] is False and disabled["nextFireAt"] is None
    enabled = body(api.patch(f"/schedules/{created['id']}", {"enabled": True}, format="json"))
    enabled_at = datetime.fromisoformat(enabled["updatedAt"])
    assert enabled_at - S < datetime.fromisoformat(enabled["nextFireAt"]) <= enabled_at + S  # from now


def test_patch_refuses_what_create_refuses(api) -> None:
    first, second = create(api, name="first"), create(api, name="second")
    path = f"/schedules/{second['id']}"
    assert "name" in error(api.patch(path, {"name": first["name"]}, format="json"), 400, "validation_error")
    assert "cron" in error(api.patch(path, {"cron": "nope"}, format="json"), 400, "validation_error")
    assert "catchUpLimit" in error(
        api.patch(path, {"catchUpLimit": 0}, format="json"), 400, "validation_error"
    )
    assert "extra" in error(api.patch(path, {"extra": 1}, format="json"), 400, "validation_error")
    assert body(api.get(path)) == second


def test_delete_removes_the_schedule_but_not_its_jobs(api) -> None:
    created = create(api)
    job = body(api.post(f"/schedules/{created['id']}/run"))
    response = api.delete(f"/schedules/{created['id']}")
    assert response.status_code == 204 and response.content == b""
    error(api.get(f"/schedules/{created['id']}"), 404, "not_found")
    assert Job.objects.filter(id=job["id"]).exists()


def test_run_now_enqueues_one_job_with_its_own_key(api, redis_db, django_capture_on_commit_callbacks) -> None:
    created = create(api, payload={"n": 1}, queue="nightly", priority=3, enabled=False, jitter=60_000)
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(f"/schedules/{created['id']}/run")
    assert response.status_code == 201, response.content
    job = body(response)
    assert response["Location"] == f"/jobs/{job['id']}"
    assert (job["jobType"], job["payload"], job["queue"], job["priority"]) == (
        "tests.record",
        {"n": 1},
        "nightly",
        3,
    )
    assert job["state"] == JobState.QUEUED  # at once: no jitter for a run now, even when disabled
    assert job["idempotencyKey"].startswith("schedule:cleanup:now:")
    assert redis_db.zscore(keys.queue_key("nightly"), job["id"]) is not None
    again = body(api.post(f"/schedules/{created['id']}/run"))
    assert again["id"] != job["id"]
    schedule = body(api.get(f"/schedules/{created['id']}"))
    assert schedule["lastJobId"] == again["id"] and schedule["nextFireAt"] is None
    assert datetime.fromisoformat(schedule["lastFiredAt"]) == datetime.fromisoformat(again["createdAt"])


def test_run_now_of_a_schedule_whose_handler_is_gone_is_unknown_job_type(api) -> None:
    created = create(api)
    PeriodicSchedule.objects.filter(id=created["id"]).update(job_type="gone.away")
    error(api.post(f"/schedules/{created['id']}/run"), 400, "unknown_job_type")
    assert not Job.objects.exists()


def test_a_declared_schedule_only_lets_enabled_change_and_cannot_be_deleted(api) -> None:
    assert sync_declared_schedules() >= 1
    declared = PeriodicSchedule.objects.get(name="tests.new-year")
    path = f"/schedules/{declared.id}"
    shown = body(api.get(path))
    assert shown["declared"] is True and shown["jobType"] == "tests.declared"
    details = error(
        api.patch(path, {"cron": "* * * * *", "jobType": "tests.record", "enabled": False}, format="json"),
        400,
        "validation_error",
    )
    assert sorted(details) == ["cron", "jobType"]
    unchanged = {"cron": shown["cron"], "payload": shown["payload"]}  # the same values are fine
    assert body(api.patch(path, {**unchanged, "enabled": False}, format="json"))["enabled"] is False
    assert error(api.delete(path), 409, "invalid_state_transition") == {"declared": True}
    assert body(api.post(f"{path}/run"))["payload"] == {"declared": True}


def test_viewers_read_schedules_and_operators_change_them(api) -> None:
    created = create(api)
    path = f"/schedules/{created['id']}"
    viewer = api_client("viewer")
    assert viewer.get("/schedules").status_code == 200
    assert body(viewer.get(path)) == created
    for response in (
        viewer.post("/schedules", {**MINIMAL, "name": "other"}, format="json"),
        viewer.patch(path, {"enabled": False}, format="json"),
        viewer.delete(path),
        viewer.post(f"{path}/run"),
    ):
        error(response, 403, "permission_denied")
    error(api_client(None).get("/schedules"), 401, "not_authenticated")
    assert body(api.get(path)) == created and not Job.objects.exists()


def test_the_tick_time_in_the_idempotency_key_is_utc() -> None:
    from scheduler.schedules import tick_key

    berlin = Cron.parse("* * * * *", "Europe/Berlin").zone
    moment = datetime(2030, 7, 1, 9, tzinfo=berlin)
    assert tick_key("report", moment) == "schedule:report:2030-07-01T07:00:00+00:00"
    assert tick_key("report", moment.astimezone(UTC)) == tick_key("report", moment)
