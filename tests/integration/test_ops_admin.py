"""The ops UI in the Django admin: every action goes through the services, viewers see but cannot
act, job data is escaped, the audit trail records admin and API actions alike."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from dlq.models import DeadLetter
from dlq.services import dead_letter_jobs
from jobs.models import AuditEntry, Job, JobEvent, QueueSettings
from jobs.roles import grant_role
from jobs.services import enqueue_job
from jobs.states import JobState
from tests.conftest import api_client, claim_all

pytestmark = pytest.mark.django_db(transaction=True)

JOBS = "/admin/jobs/job/"
DLQ = "/admin/dlq/deadletter/"
DASHBOARD = "/admin/jobs/job/dashboard/"
XSS = "<script>alert(1)</script>"


def staff(role: str) -> Client:
    user = get_user_model().objects.create_user(f"{role}-ui", password="pw", is_staff=True)
    grant_role(user, role)
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def operator() -> Client:
    return staff("operator")


@pytest.fixture
def viewer() -> Client:
    return staff("viewer")


def dead(n: int = 1, queue: str = "default") -> list[Job]:
    jobs = [enqueue_job("tests.record", {"i": i}, queue=queue).job for i in range(n)]
    dead_letter_jobs(ids=[j.id for j in jobs], actor="setup", reason="test")
    return jobs


def act(client: Client, url: str, action: str, ids: list, reason: str = "") -> str:
    response = client.post(
        url, {"action": action, "_selected_action": [str(i) for i in ids], "reason": reason}, follow=True
    )
    assert response.status_code == 200
    return " ".join(str(m) for m in response.context["messages"])


def test_bulk_retry_reports_changed_and_skipped_and_records_who_and_why(operator: Client) -> None:
    failed = dead(2)
    queued = enqueue_job("tests.record", {}).job
    message = act(operator, JOBS, "retry", [*(j.id for j in failed), queued.id], reason="fixed the bug")
    assert message == "Retried 2 jobs; skipped 1 (1 QUEUED: not allowed from that state)."
    assert set(Job.objects.values_list("state", flat=True)) == {JobState.QUEUED}
    assert not DeadLetter.objects.exists()
    entries = AuditEntry.objects.filter(action="retry")
    assert {(e.actor, e.target_id, e.reason) for e in entries} == {
        ("operator-ui", str(j.id), "fixed the bug") for j in failed
    }
    event = JobEvent.objects.get(job=failed[0], type="retried")
    assert event.details["actor"] == "operator-ui" and event.details["reason"] == "fixed the bug"


def test_bulk_cancel_and_dead_letter_use_the_services_guards(operator: Client) -> None:
    running = enqueue_job("tests.record", {}).job
    claim_all()
    waiting = enqueue_job("tests.record", {}).job
    waiting_again = enqueue_job("tests.record", {}).job
    assert act(operator, JOBS, "cancel", [waiting.id]) == "Canceled (running: asked to stop) 1 job."
    assert Job.objects.get(id=waiting.id).state == JobState.CANCELED
    message = act(operator, JOBS, "dead_letter", [waiting.id, running.id, waiting_again.id])
    assert message == "Dead-lettered 2 jobs; skipped 1 (1 CANCELED: not allowed from that state)."
    assert DeadLetter.objects.filter(job_id__in=[running.id, waiting_again.id]).count() == 2
    assert AuditEntry.objects.filter(action="dead-letter", actor="operator-ui").count() == 2


def test_dlq_bulk_replay_delete_and_replay_one(operator: Client) -> None:
    a, b, c, d = dead(4)
    assert act(operator, DLQ, "replay", [a.id]) == "Replayed 1 job."
    assert act(operator, DLQ, "delete", [b.id, c.id], reason="junk") == "Deleted 2 jobs."
    assert not Job.objects.filter(id__in=[b.id, c.id]).exists()
    assert not JobEvent.objects.filter(job_id__in=[b.id, c.id]).exists()
    assert AuditEntry.objects.filter(action="delete", reason="junk", actor="operator-ui").count() == 2
    page = operator.get(f"{DLQ}{d.id}/change/")
    assert b"Replay this job" in page.content
    response = operator.post(f"{DLQ}{d.id}/replay/", follow=True)
    assert response.redirect_chain[-1][0] == f"{JOBS}{d.id}/change/"
    assert Job.objects.get(id=d.id).state == JobState.QUEUED
    assert AuditEntry.objects.filter(action="replay", target_id=str(d.id)).exists()


def test_viewer_sees_everything_but_cannot_act(viewer: Client) -> None:
    job = dead(1)[0]
    for url in (
        JOBS,
        f"{JOBS}{job.id}/change/",
        DLQ,
        f"{DLQ}{job.id}/change/",
        DASHBOARD,
        "/admin/jobs/auditentry/",
    ):
        assert viewer.get(url).status_code == 200, url
    listing = viewer.get(JOBS)
    assert listing.context["action_form"] is None  # no action is offered
    assert b"Act on this job" not in viewer.get(f"{JOBS}{job.id}/change/").content
    assert b"Replay this job" not in viewer.get(f"{DLQ}{job.id}/change/").content
    assert b"Pause" not in viewer.get(DASHBOARD).content
    act(viewer, DLQ, "replay", [job.id])  # not offered: nothing happens
    assert viewer.post(f"{DLQ}{job.id}/replay/").status_code == 403
    assert viewer.post(f"{JOBS}{job.id}/act/", {"action": "retry"}).status_code == 403
    assert viewer.post(f"{DASHBOARD}pause/", {"queue": "default", "paused": "1"}).status_code == 403
    assert viewer.get(f"{JOBS}{job.id}/clone/").status_code == 403
    assert Job.objects.get(id=job.id).state == JobState.DLQ
    assert not AuditEntry.objects.exclude(actor="setup").exists()


def test_jobs_cannot_be_edited_but_can_be_cloned(operator: Client) -> None:
    job = enqueue_job("tests.record", {"n": 1}, queue="q1", priority=5).job
    page = operator.get(f"{JOBS}{job.id}/change/")
    assert b'name="payload"' not in page.content and b"Clone and enqueue" in page.content
    assert operator.post(f"{JOBS}{job.id}/change/", {"state": "SUCCEEDED"}).status_code == 403
    assert operator.post(f"{JOBS}{job.id}/clone/", {"payload": "{not json"}).status_code == 200
    response = operator.post(f"{JOBS}{job.id}/clone/", {"payload": '{"n": 2}'}, follow=True)
    clone = Job.objects.exclude(id=job.id).get()
    assert (clone.job_type, clone.payload, clone.queue, clone.priority) == ("tests.record", {"n": 2}, "q1", 5)
    assert response.redirect_chain[-1][0] == f"{JOBS}{clone.id}/change/"


def test_detail_page_acts_one_job_and_shows_its_history(operator: Client) -> None:
    job = enqueue_job("tests.record", {"n": 1}).job
    response = operator.post(
        f"{JOBS}{job.id}/act/", {"action": "cancel", "reason": "not needed"}, follow=True
    )
    assert "cancel done" in " ".join(str(m) for m in response.context["messages"])
    again = operator.post(f"{JOBS}{job.id}/act/", {"action": "dead-letter"}, follow=True)
    assert "Cannot dead-letter a job in state CANCELED." in " ".join(
        str(m) for m in again.context["messages"]
    )
    content = again.content.decode()
    assert "canceled" in content and "not needed" in content and "operator-ui" in content


def test_job_data_is_escaped(operator: Client) -> None:
    job = Job.objects.create(
        job_type=XSS,
        queue="default",
        payload={"html": XSS},
        state=JobState.PENDING,
        next_run_at="2030-01-01T00:00Z",
    )
    for url in (JOBS, f"{JOBS}{job.id}/change/"):
        content = operator.get(url).content.decode()
        assert XSS not in content, url
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in content, url


def test_search_filters_and_capped_count(operator: Client) -> None:
    keyed = enqueue_job("tests.record", {}, idempotency_key="order-42", queue="billing").job
    enqueue_job("taskforge.noop", {}, queue="mail")
    assert list(operator.get(JOBS, {"q": "order-42"}).context["cl"].result_list) == [keyed]
    assert list(operator.get(JOBS, {"q": str(keyed.id)}).context["cl"].result_list) == [keyed]
    assert list(operator.get(JOBS, {"q": "nope"}).context["cl"].result_list) == []
    assert list(operator.get(JOBS, {"queue": "billing"}).context["cl"].result_list) == [keyed]
    assert list(operator.get(JOBS, {"job_type": "tests.record"}).context["cl"].result_list) == [keyed]
    assert operator.get(JOBS, {"state": "QUEUED"}).context["cl"].result_count == 2


def test_dashboard_shows_queues_and_pauses_through_the_service(operator: Client) -> None:
    enqueue_job("tests.record", {}, queue="billing")
    body = operator.get(f"{DASHBOARD}body/").content.decode()
    assert 'data-queue="billing"' in body and "<svg" in body
    assert b"Dashboard" in operator.get("/admin/").content
    operator.post(f"{DASHBOARD}pause/", {"queue": "billing", "paused": "1", "reason": "incident 7"})
    assert QueueSettings.objects.get(name="billing").paused
    entry = AuditEntry.objects.get(action="pause")
    assert (entry.actor, entry.target_type, entry.target_id, entry.reason) == (
        "operator-ui",
        "queue",
        "billing",
        "incident 7",
    )
    assert "Resume" in operator.get(DASHBOARD).content.decode()


def test_api_actions_land_in_the_audit_trail() -> None:
    api = api_client("operator")
    job = dead(1)[0]
    assert api.post(f"/dlq/{job.id}/replay").status_code == 200
    assert api.post("/queues/default/pause").status_code == 200
    actions = list(
        AuditEntry.objects.exclude(actor="setup").order_by("id").values_list("action", "target_type")
    )
    assert actions == [("replay", "job"), ("pause", "queue")]


def test_ui_dir_templates_win(tmp_path: Path) -> None:
    override = tmp_path / "admin" / "jobs"
    override.mkdir(parents=True)
    (override / "dashboard_body.html").write_text("restyled by the operator")
    script = (
        "import django; django.setup();"
        "from django.template.loader import render_to_string;"
        "print(render_to_string('admin/jobs/dashboard_body.html', {}))"
    )
    env = {**__import__("os").environ, "UI_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "tests.settings"}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "restyled by the operator"


def test_job_list_never_counts_the_whole_table(operator: Client) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    enqueue_job("tests.record", {})
    with CaptureQueriesContext(connection) as queries:
        assert operator.get(JOBS).status_code == 200
    counts = [
        q["sql"] for q in queries.captured_queries if "COUNT(" in q["sql"].upper() and '"jobs"' in q["sql"]
    ]
    totals = [sql for sql in counts if "GROUP BY" not in sql]  # the queue filter's counts use an index
    assert totals and all("LIMIT 10001" in sql for sql in totals), totals
