"""Metrics, traces and logs seen from outside, with real worker, scheduler and API processes."""

from __future__ import annotations

import http.client
import json
import socket
import uuid
from pathlib import Path

import pytest
from django.test import Client

from jobs.models import Job
from jobs.services import JobSpec, enqueue_job, enqueue_jobs
from jobs.states import JobState
from tests.conftest import wait_for
from tests.prometheus import parse, value

pytestmark = pytest.mark.e2e

TRACING = {"TRACING_ENABLED": "true", "TRACING_EXPORTER": "stdout", "OTEL_BSP_SCHEDULE_DELAY": "50"}


def _metrics() -> dict:
    response = Client().get("/metrics", HTTP_HOST="localhost")
    assert response.status_code == 200
    return parse(response.content.decode())


def _lines(output: str) -> list[dict]:
    """Every JSON object printed one per line (spans on stdout, logs on stderr)."""
    found = []
    for line in output.splitlines():
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict):
            found.append(obj)
    return found


def _spans(output: str) -> list[dict]:
    return [obj for obj in _lines(output) if "context" in obj and "kind" in obj]


def test_worker_counters_and_histograms_move_by_exactly_the_attempts_made(spawn) -> None:
    worker = spawn("runworker", "--concurrency", "4")
    spawn("runscheduler")
    fast_retry = {"initial_delay_ms": 10, "queue": "obs"}
    ok = [
        r.job.id for r in enqueue_jobs([JobSpec("taskforge.echo", {"n": i}, queue="obs") for i in range(3)])
    ]
    flaky = enqueue_job("taskforge.fail", {"times": 1}, **fast_retry).job.id  # fails once, then succeeds
    doomed = enqueue_job("taskforge.fail", {}, max_attempts=2, **fast_retry).job.id  # fails twice: DLQ
    wait_for(
        lambda: (
            Job.objects.filter(id__in=[*ok, flaky], state=JobState.SUCCEEDED).count() == 4
            and Job.objects.get(id=doomed).state == JobState.DLQ
        ),
        what="3 successes, a success after a retry, and a dead letter",
    )
    # 3 + 2 + 2 attempts, of which 4 succeeded and 3 failed; the flush follows within a second
    families = wait_for(
        lambda: (m := _metrics()) and value(m, "taskforge_job_runtime_seconds_count", queue="obs") == 7 and m,
        what="the worker's counts to reach /metrics",
    )
    assert value(families, "taskforge_job_attempts_total", queue="obs") == 7
    assert value(families, "taskforge_job_success_total", queue="obs") == 4
    assert value(families, "taskforge_job_failure_total", queue="obs") == 3
    assert value(families, "taskforge_lease_timeouts_total", queue="obs") == 0
    assert value(families, "taskforge_job_runtime_seconds_bucket", queue="obs", le="+Inf") == 7
    assert value(families, "taskforge_job_time_in_queue_seconds_count", queue="obs") == 7
    waited = value(families, "taskforge_job_time_in_queue_seconds_sum", queue="obs")
    assert waited is not None and 0 < waited < 7 * 5  # measured per job, from QUEUED to claimed
    assert value(families, "taskforge_dlq_count") == 1
    assert value(families, "taskforge_jobs", queue="obs", state="DLQ") == 1
    assert value(families, "taskforge_queue_depth", queue="obs") == 0
    assert value(families, "taskforge_workers_online") == 1
    assert _spans(worker.output()) == []  # tracing is off: nothing printed


def test_utilization_while_a_sleep_job_runs(spawn) -> None:
    # heartbeats (which carry the busy slots) every second with a 3 s lease
    spawn("runworker", "--queues", "util", "--concurrency", "2", env={"TASKFORGE_LEASE_SECONDS": "3"})
    wait_for(
        lambda: value(_metrics(), "taskforge_worker_utilization", queue="util") == 0, what="an idle worker"
    )
    job = enqueue_job("taskforge.sleep", {"seconds": 4}, queue="util").job
    wait_for(
        lambda: value(_metrics(), "taskforge_worker_utilization", queue="util") == 0.5,
        what="one of two slots busy",
    )
    assert Job.objects.get(id=job.id).state == JobState.RUNNING
    wait_for(lambda: Job.objects.get(id=job.id).state == JobState.SUCCEEDED, what="the sleep to end")
    wait_for(lambda: value(_metrics(), "taskforge_worker_utilization", queue="util") == 0, what="idle again")


def test_log_level_is_honoured(spawn) -> None:
    quiet = spawn("runworker", "--burst", env={"LOG_LEVEL": "error"})
    assert quiet.wait(timeout=30) == 0
    assert "worker started" not in quiet.output()
    chatty = spawn("runworker", "--burst", env={"LOG_LEVEL": "debug"})
    assert chatty.wait(timeout=30) == 0
    started = [obj for obj in _lines(chatty.output()) if obj.get("msg") == "worker started"]
    assert started and started[0]["level"] == "info"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _http(port: int, method: str, path: str, body: dict | None = None, headers: dict | None = None) -> tuple:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        payload = json.dumps(body) if body is not None else None
        conn.request(
            method, path, body=payload, headers={"Content-Type": "application/json", **(headers or {})}
        )
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def _up(port: int) -> bool:
    try:
        return _http(port, "GET", "/healthz")[0] == 200
    except OSError:
        return False


def test_one_trace_from_the_api_request_through_scheduler_and_worker(spawn, tmp_path: Path) -> None:
    port = _free_port()
    api = spawn(
        "-c",
        "gunicorn.conf.py",
        program=("-m", "gunicorn"),
        env={
            **TRACING,
            "HTTP_ADDR": f"127.0.0.1:{port}",
            "GUNICORN_WORKERS": "1",
            "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prometheus"),
            "TASKFORGE_API_AUTH": "off",  # this test is about traces, not credentials
        },
    )
    worker = spawn("runworker", env=TRACING)
    scheduler = spawn("runscheduler", env=TRACING)
    wait_for(lambda: _up(port), what="gunicorn to answer")

    caller_trace, caller_span = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    status, body = _http(
        port,
        "POST",
        "/jobs",
        {"jobType": "tests.log", "delay": 300},  # delayed: the scheduler promotes it
        {"traceparent": f"00-{caller_trace}-{caller_span}-01"},
    )
    assert status == 201, body
    job_id = json.loads(body)["id"]
    status, body = _http(port, "POST", "/jobs", {"jobType": "taskforge.fail", "payload": {"permanent": True}})
    assert status == 201, body
    failing_id = json.loads(body)["id"]
    wait_for(lambda: Job.objects.get(id=job_id).state == JobState.SUCCEEDED, what="the traced job to run")
    wait_for(lambda: Job.objects.get(id=failing_id).state == JobState.DLQ, what="the failing job to fail")

    def span_named(proc, name: str, job: str) -> dict | None:
        return next(
            (s for s in _spans(proc.output()) if s["name"] == name and s["attributes"].get("job_id") == job),
            None,
        )

    executed = wait_for(lambda: span_named(worker, "job.execute", job_id), what="the worker's span")
    promoted = wait_for(lambda: span_named(scheduler, "job.promote", job_id), what="the scheduler's span")
    request = wait_for(
        lambda: next((s for s in _spans(api.output()) if s["kind"] == "SpanKind.SERVER"), None),
        what="the API's request span",
    )
    # the request span continues the caller's trace; the job's spans are its children
    assert request["context"]["trace_id"] == f"0x{caller_trace}"
    assert request["parent_id"] == f"0x{caller_span}"
    for span in (executed, promoted):
        assert span["context"]["trace_id"] == f"0x{caller_trace}"
        assert span["parent_id"] == request["context"]["span_id"]
        assert span["kind"] == "SpanKind.CONSUMER"
    assert executed["attributes"] == {
        "job_id": job_id,
        "queue": "jobs:ready",
        "job.type": "tests.log",
        "attempt": 1,
    }
    assert executed["status"]["status_code"] == "UNSET"

    # the failing attempt records its exception; a job enqueued without a caller starts a trace at the API
    failed = wait_for(lambda: span_named(worker, "job.execute", failing_id), what="the failed attempt's span")
    assert failed["status"]["status_code"] == "ERROR"
    assert [e["name"] for e in failed["events"]] == ["exception"]
    assert failed["events"][0]["attributes"]["exception.type"] == "workers.context.PermanentError"
    assert failed["parent_id"] is not None

    # log lines carry the ids: the handler's own line inside the job span, the API's access line
    said = next(obj for obj in _lines(worker.output()) if obj.get("msg") == "handler says hi")
    assert (said["job_id"], said["queue"]) == (job_id, "jobs:ready")
    assert (f"0x{said['trace_id']}", f"0x{said['span_id']}") == (
        executed["context"]["trace_id"],
        executed["context"]["span_id"],
    )
    access = [
        obj for obj in _lines(api.output()) if obj.get("msg") == "request" and obj.get("method") == "POST"
    ]
    assert access[0]["trace_id"] == caller_trace
    assert any(obj.get("logger") == "gunicorn.error" for obj in _lines(api.output()))  # gunicorn's too

    # multiprocess mode: request metrics from the gunicorn workers' files plus the cluster's series
    status, text = _http(port, "GET", "/metrics")
    assert status == 200
    families = parse(text)
    assert value(families, "django_http_requests_total_by_method_total", method="POST") == 2
    assert value(families, "taskforge_job_success_total", queue="jobs:ready") is not None
