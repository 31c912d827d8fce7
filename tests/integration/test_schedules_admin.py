"""Periodic schedules in the Django admin: the same service as the API behind every form and action."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from jobs.models import Job
from jobs.roles import grant_role
from scheduler import schedules
from scheduler.models import PeriodicSchedule

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/scheduler/periodicschedule/"
FORM = {
    "name": "nightly",
    "cron": "0 3 * * *",
    "timezone": "Europe/Berlin",
    "job_type": "tests.record",
    "payload": '{"days": 1}',
    "queue": "",
    "priority": "0",
    "misfire_policy": "catch_up",
    "catch_up_limit": "5",
    "jitter_ms": "0",
    "enabled": "on",
}


@pytest.fixture
def admin_client() -> Client:
    client = Client()
    client.force_login(get_user_model().objects.create_superuser("root", "root@example.com", "pw"))
    return client


def make(name: str = "nightly", **fields: Any) -> PeriodicSchedule:
    values = {"cron": "0 3 * * *", "job_type": "tests.record", **fields}
    return schedules.create_schedule(PeriodicSchedule(name=name, **values))


def test_the_list_shows_the_next_and_last_runs(admin_client) -> None:
    make()
    html = admin_client.get(CHANGELIST).content.decode()
    for column in (
        "Name",
        "Cron",
        "Timezone",
        "Job type",
        "Queue",
        "Enabled",
        "Last fired at",
        "Next fire at",
    ):
        assert column in html, column
    assert "nightly" in html and "0 3 * * *" in html


def test_an_empty_payload_is_an_empty_object(admin_client) -> None:
    assert admin_client.post(f"{CHANGELIST}add/", {**FORM, "payload": ""}).status_code == 302
    assert PeriodicSchedule.objects.get().payload == {}


def test_adding_a_schedule_plans_its_first_tick(admin_client) -> None:
    response = admin_client.post(f"{CHANGELIST}add/", FORM)
    assert response.status_code == 302, response.content.decode()[-3000:]
    created = PeriodicSchedule.objects.get(name="nightly")
    assert (created.timezone, created.payload, created.queue, created.catch_up_limit) == (
        "Europe/Berlin", {"days": 1}, None, 5,
    )  # fmt: skip
    assert created.next_fire_at is not None and not created.declared


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("cron", "0 0 30 2 *", "no tick within 50 years"),
        ("timezone", "Mars/Olympus", "Unknown timezone"),
        ("job_type", "nope", "Unknown job type"),
        ("catch_up_limit", "0", "greater than or equal to 1"),
    ],
)
def test_the_form_shows_what_is_wrong_and_saves_nothing(admin_client, field, value, message) -> None:
    response = admin_client.post(f"{CHANGELIST}add/", {**FORM, field: value})
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not PeriodicSchedule.objects.exists()


def test_changing_the_cron_replans(admin_client) -> None:
    schedule = make()
    response = admin_client.post(f"{CHANGELIST}{schedule.id}/change/", {**FORM, "cron": "0 4 * * *"})
    assert response.status_code == 302
    schedule.refresh_from_db()
    assert (
        schedule.cron == "0 4 * * *" and schedule.next_fire_at.astimezone(ZoneInfo("Europe/Berlin")).hour == 4
    )


def test_run_now_goes_through_the_service(admin_client) -> None:
    first, second = make("a", payload={"n": 1}), make("b", enabled=False)
    response = admin_client.post(
        CHANGELIST, {"action": "run_now", "_selected_action": [str(first.id), str(second.id)]}, follow=True
    )
    assert response.status_code == 200
    jobs = {job.idempotency_key.split(":")[1]: job for job in Job.objects.all()}
    assert set(jobs) == {"a", "b"} and jobs["a"].payload == {"n": 1}
    assert f"Schedule a: enqueued job {jobs['a'].id}." in response.content.decode()
    first.refresh_from_db()
    assert first.last_job_id == jobs["a"].id


def test_a_declared_schedule_shows_its_code_owned_fields_read_only_and_cannot_be_deleted(
    admin_client,
) -> None:
    schedules.sync_declared_schedules()
    declared = PeriodicSchedule.objects.get(name="tests.new-year")
    page = admin_client.get(f"{CHANGELIST}{declared.id}/change/").content.decode()
    assert 'name="cron"' not in page and 'name="enabled"' in page
    response = admin_client.post(f"{CHANGELIST}{declared.id}/change/", {"enabled": ""})  # pause it
    assert response.status_code == 302
    declared.refresh_from_db()
    assert declared.enabled is False and declared.cron == "0 0 1 1 *"
    assert admin_client.get(f"{CHANGELIST}{declared.id}/delete/").status_code == 403


def test_viewers_see_schedules_and_only_operators_change_them() -> None:
    schedule = make()
    users = {}
    for role in ("viewer", "operator"):
        user = get_user_model().objects.create_user(role, password="pw", is_staff=True)
        grant_role(user, role)
        users[role] = Client()
        users[role].force_login(user)
    assert users["viewer"].get(CHANGELIST).status_code == 200
    assert users["viewer"].get(f"{CHANGELIST}add/").status_code == 403
    assert (
        users["viewer"].post(f"{CHANGELIST}{schedule.id}/change/", {**FORM, "cron": "* * * * *"}).status_code
        == 403
    )
    assert users["operator"].get(f"{CHANGELIST}add/").status_code == 200
    assert users["operator"].post(f"{CHANGELIST}{schedule.id}/delete/", {"post": "yes"}).status_code == 302
    assert not PeriodicSchedule.objects.exists()
