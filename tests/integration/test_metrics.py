"""GET /metrics: names, types and labels as the contract lists them, read from real Postgres
and Redis; Redis trouble leaves series out instead of failing the scrape."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from django.test import Client
from django.utils import timezone

from jobs.models import Job
from jobs.services import Outcome, enqueue_job, settle_jobs
from scheduler import services
from tests.conftest import claim_all
from tests.prometheus import parse, value
from workers import broker, metrics

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]

# name -> (type, label names), DESIGN.md §9
CONTRACT = {
    "taskforge_queue_depth": ("gauge", {"queue"}),
    "taskforge_dlq_count": ("gauge", set()),
    "taskforge_job_attempts": ("counter", {"queue"}),
    "taskforge_job_success": ("counter", {"queue"}),
    "taskforge_job_failure": ("counter", {"queue"}),
    "taskforge_job_runtime_seconds": ("histogram", {"queue"}),
    "taskforge_job_time_in_queue_seconds": ("histogram", {"queue"}),
    "taskforge_worker_utilization": ("gauge", {"queue"}),
    "taskforge_worker_concurrency_throttled": ("counter", {"queue"}),
    "taskforge_worker_rate_throttled": ("counter", {"queue"}),
    "taskforge_lease_timeouts": ("counter", {"queue"}),
    "taskforge_jobs": ("gauge", {"queue", "state"}),
    "taskforge_workers_online": ("gauge", set()),
}


def _scrape(client: Client | None = None) -> str:
    response = (client or Client()).get("/metrics", HTTP_HOST="localhost")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    return response.content.decode()


def _announce_worker(worker_id: str, queues: str, slots: int, busy: int) -> None:
    info = {"id": worker_id, "queues": queues, "slots": slots, "busy": busy}
    broker.record_worker(worker_id, info, ttl_seconds=30)


def test_every_contract_metric_with_its_type_and_labels() -> None:
    enqueue_job("taskforge.noop", queue="mq")
    metrics.record_claimed([("mq", 0.02)])
    metrics.record_settled([("mq", "SUCCEEDED", 0.3)])
    metrics.count_throttled("mq", "concurrency")
    metrics.count_per_queue(metrics.LEASE_TIMEOUTS, ["mq"])
    assert metrics.flush()
    _announce_worker("w1", "*", slots=4, busy=1)
    Client().get("/healthz", HTTP_HOST="localhost")  # so django-prometheus has a request to count

    families = parse(_scrape())

    for name, (kind, labels) in CONTRACT.items():
        assert families[name].type == kind, name
        assert families[name].samples, name
        for sample in families[name].samples:
            assert set(sample.labels) - {"le"} == labels, (name, sample)
    assert families["django_http_requests_total_by_method"].type == "counter"
    assert families["django_http_requests_latency_seconds_by_view_method"].type == "histogram"
    assert value(families, "taskforge_queue_depth", queue="mq") == 1
    assert value(families, "taskforge_jobs", queue="mq", state="QUEUED") == 1
    assert value(families, "taskforge_jobs", queue="mq", state="RUNNING") == 0
    assert value(families, "taskforge_job_attempts_total", queue="mq") == 1
    assert value(families, "taskforge_job_success_total", queue="mq") == 1
    assert value(families, "taskforge_job_failure_total", queue="mq") == 0
    assert value(families, "taskforge_lease_timeouts_total", queue="mq") == 1
    assert value(families, "taskforge_worker_concurrency_throttled_total", queue="mq") == 1
    assert value(families, "taskforge_worker_rate_throttled_total", queue="mq") == 0
    assert value(families, "taskforge_job_runtime_seconds_bucket", queue="mq", le="0.25") == 0
    assert value(families, "taskforge_job_runtime_seconds_bucket", queue="mq", le="0.5") == 1
    assert value(families, "taskforge_job_runtime_seconds_bucket", queue="mq", le="+Inf") == 1
    assert value(families, "taskforge_job_runtime_seconds_count", queue="mq") == 1
    assert value(families, "taskforge_job_runtime_seconds_sum", queue="mq") == pytest.approx(0.3)
    assert value(families, "taskforge_job_time_in_queue_seconds_bucket", queue="mq", le="0.025") == 1
    assert value(families, "taskforge_worker_utilization", queue="mq") == 0.25
    assert value(families, "taskforge_workers_online") == 1
    assert value(families, "taskforge_dlq_count") == 0


def test_utilization_counts_only_the_workers_serving_each_queue() -> None:
    _announce_worker("all", "*", slots=4, busy=4)
    _announce_worker("ab", "a,b", slots=4, busy=0)
    _announce_worker("c", "c", slots=2, busy=1)
    families = parse(_scrape())
    assert value(families, "taskforge_worker_utilization", queue="a") == 0.5
    assert value(families, "taskforge_worker_utilization", queue="b") == 0.5
    assert value(families, "taskforge_worker_utilization", queue="c") == pytest.approx(5 / 6)
    assert value(families, "taskforge_workers_online") == 3
    broker.forget_worker("all")
    families = parse(_scrape())
    assert value(families, "taskforge_worker_utilization", queue="a") == 0
    assert value(families, "taskforge_worker_utilization", queue="c") == 0.5


def test_counters_add_up_across_flushes_and_processes(redis_db: redis.Redis) -> None:
    for _ in range(3):
        metrics.record_claimed([("q1", 0.5), ("q2", 2.0)])
        assert metrics.flush()
    # another process's recorder adds to the same hashes
    other = metrics.Recorder()
    other.add([(metrics.ATTEMPTS, "q1", 10)])
    assert other.flush(redis_db)
    families = parse(_scrape())
    assert value(families, "taskforge_job_attempts_total", queue="q1") == 13
    assert value(families, "taskforge_job_attempts_total", queue="q2") == 3
    assert value(families, "taskforge_job_time_in_queue_seconds_count", queue="q2") == 3
    assert value(families, "taskforge_job_time_in_queue_seconds_sum", queue="q2") == 6.0


def test_a_failed_flush_keeps_its_counts_for_the_next(redis_db: redis.Redis) -> None:
    recorder = metrics.Recorder()
    recorder.add([(metrics.SUCCESS, "q", 2)])
    unreachable = redis.Redis(port=1, socket_connect_timeout=0.2, retry=None)  # nothing listens on port 1
    assert recorder.flush(unreachable) is False
    recorder.add([(metrics.SUCCESS, "q", 1)])
    assert recorder.flush(redis_db)
    assert redis_db.hget("taskforge:stats:counter:job_success_total", "q") == "3"


def test_redis_down_leaves_its_series_out_and_postgres_ones_in(monkeypatch) -> None:
    enqueue_job("taskforge.noop", queue="mq")
    monkeypatch.setattr(broker, "fast_client", lambda: redis.Redis(port=1, socket_connect_timeout=0.2))
    families = parse(_scrape())
    assert value(families, "taskforge_queue_depth", queue="mq") == 1
    assert "taskforge_job_attempts" not in families
    assert "taskforge_workers_online" not in families


def test_metrics_is_open_and_read_only() -> None:
    assert Client().get("/metrics", HTTP_HOST="localhost").status_code == 200  # no credentials
    response = Client().post("/metrics", HTTP_HOST="localhost")
    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"


@pytest.mark.django_db(transaction=True)  # enqueue publishes to Redis on commit
def test_expired_leases_are_counted_per_queue_by_the_scheduler() -> None:
    enqueue_job("taskforge.noop", queue="lease-a")
    enqueue_job("taskforge.noop", queue="lease-a")
    enqueue_job("taskforge.noop", queue="lease-b")
    claim_all()
    Job.objects.update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    assert services.expire_leases() == 3
    assert metrics.flush()
    families = parse(_scrape())
    assert value(families, "taskforge_lease_timeouts_total", queue="lease-a") == 2
    assert value(families, "taskforge_lease_timeouts_total", queue="lease-b") == 1


def test_the_grafana_dashboard_queries_only_metrics_that_exist() -> None:
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "taskforge-dashboard.json").read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    used = {name for expr in exprs for name in re.findall(r"\b(?:taskforge|django)_\w+", expr)}
    metrics.record_claimed([("mq", 0.1)])
    metrics.flush()
    _announce_worker("w1", "*", slots=1, busy=0)
    Client().get("/healthz", HTTP_HOST="localhost")
    exported = {sample.name for family in parse(_scrape()).values() for sample in family.samples}
    assert used and used <= exported, used - exported


@pytest.mark.django_db(transaction=True)
def test_finished_states_appear_once_the_scheduler_has_counted_them() -> None:
    enqueue_job("taskforge.echo", {}, queue="fin")
    [claimed] = claim_all()
    settle_jobs(worker_id="test-worker", outcomes=[Outcome.success(claimed, {})])
    families = parse(_scrape())
    assert value(families, "taskforge_jobs", queue="fin", state="RUNNING") == 0
    assert value(families, "taskforge_jobs", queue="fin", state="SUCCEEDED") is None  # unknown, not 0
    services.refresh_finished_counts()
    families = parse(_scrape())
    assert value(families, "taskforge_jobs", queue="fin", state="SUCCEEDED") == 1
    assert value(families, "taskforge_jobs", queue="fin", state="CANCELED") == 0
