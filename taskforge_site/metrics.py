"""GET /metrics: django-prometheus' request metrics plus TaskForge's cluster-wide metrics.

Our own view, not django_prometheus.urls: in multiprocess mode (gunicorn with
PROMETHEUS_MULTIPROC_DIR) that view builds a fresh registry holding only the per-host
MultiProcessCollector and would drop a collector registered on the global REGISTRY.

`ClusterCollector` reads at scrape time, so every API instance exports the same cluster series:
- Postgres: jobs by queue and state (`jobs.selectors.queue_counts`: the unfinished states from
  an index-only scan of the partial index jobs_active_idx, the DLQ from dead_letters, and
  SUCCEEDED/CANCELED as the scheduler last counted them), never a scan of the finished history,
  which is most of the table;
- Redis: the counters and histograms workers and schedulers flush (workers/metrics.py) and the
  worker heartbeats (utilization, workers online).
A source that fails is left out of the scrape (and logged); /metrics itself never fails.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import redis
from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.db import DatabaseError, connection, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from prometheus_client import REGISTRY, CollectorRegistry, exposition, multiprocess
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from jobs import selectors
from jobs.states import FINISHED_STATES, JobState
from workers import broker
from workers import metrics as stats

logger = logging.getLogger("taskforge.metrics")

STATEMENT_TIMEOUT_MS = 2_000  # a scrape must not pile up behind a slow database
# Counted at every scrape; SUCCEEDED and CANCELED only once the scheduler has counted them.
LIVE_STATES = [s for s in JobState.values if s not in FINISHED_STATES or s == JobState.DLQ]

HELP = {
    "queue_depth": "Jobs in state QUEUED (runnable, waiting for a worker).",
    "jobs": "Jobs by queue and state (SUCCEEDED and CANCELED as of the scheduler's last count).",
    "dlq_count": "Jobs in the dead-letter queue (rows of dead_letters).",
    stats.ATTEMPTS: "Attempts started (jobs claimed by a worker).",
    stats.SUCCESS: "Attempts that ended SUCCEEDED.",
    stats.FAILURE: "Attempts whose handler failed (the job went to RETRYING or DLQ).",
    stats.LEASE_TIMEOUTS: "Attempts whose lease expired (worker died or hung); counted by the scheduler.",
    stats.THROTTLED["concurrency"]: "Times a worker had no free slot while jobs of the queue were waiting.",
    stats.THROTTLED["rate"]: "Times a worker held back a job of the queue because of its rate limit.",
    stats.RUNTIME: "Handler run time of settled attempts, measured by the worker.",
    stats.TIME_IN_QUEUE: "Time from becoming QUEUED to being claimed (database clock).",
    "worker_utilization": "Busy slots / total slots of the live workers serving the queue.",
    "workers_online": "Workers with a live heartbeat.",
}


def _name(short: str) -> str:
    return f"taskforge_{short}"


class ClusterCollector(Collector):
    """TaskForge's metrics for the whole cluster, read from Postgres and Redis at scrape time."""

    def describe(self) -> list[Metric]:
        return []  # no Postgres or Redis call when the collector is registered

    def collect(self) -> Iterator[Metric]:
        counts = self._counts()
        cluster = self._cluster()
        queues = set(counts.by_queue) if counts is not None else set()
        if cluster is not None:
            queues |= cluster.queues
            for per_queue in (*cluster.counters.values(), *cluster.histograms.values()):
                queues |= set(per_queue)
            for worker in cluster.workers:
                queues |= {q for q in worker.get("queues", "*").split(",") if q != "*"}
        if counts is not None:
            yield from self._postgres_families(counts, sorted(queues))
        if cluster is not None:
            yield from self._redis_families(cluster, sorted(queues))

    @staticmethod
    def _counts() -> selectors.QueueCounts | None:
        try:
            with transaction.atomic():
                with connection.cursor() as cursor:
                    cursor.execute(f"SET LOCAL statement_timeout = {STATEMENT_TIMEOUT_MS}")
                return selectors.queue_counts()
        except DatabaseError as exc:
            logger.warning("metrics: postgres unavailable, its series left out", extra={"error": str(exc)})
            return None

    @staticmethod
    def _cluster() -> stats.ClusterStats | None:
        try:
            return stats.read_stats(
                broker.fast_client(), worker_max_age_seconds=settings.TASKFORGE.lease_seconds
            )
        except redis.RedisError as exc:
            logger.warning("metrics: redis unavailable, its series left out", extra={"error": str(exc)})
            return None

    @staticmethod
    def _postgres_families(counts: selectors.QueueCounts, queues: list[str]) -> Iterator[Metric]:
        depth = GaugeMetricFamily(_name("queue_depth"), HELP["queue_depth"], labels=["queue"])
        jobs = GaugeMetricFamily(_name("jobs"), HELP["jobs"], labels=["queue", "state"])
        # Not counted yet (a fresh Redis, or Redis down) means unknown: no series, never a false 0.
        states = JobState.values if counts.finished_as_of is not None else LIVE_STATES
        for queue in queues:
            by_state = counts.by_queue.get(queue, {})
            depth.add_metric([queue], by_state.get(JobState.QUEUED, 0))
            for state in states:
                jobs.add_metric([queue, state], by_state.get(state, 0))
        dlq = sum(by_state.get(JobState.DLQ, 0) for by_state in counts.by_queue.values())
        yield depth
        yield jobs
        yield GaugeMetricFamily(_name("dlq_count"), HELP["dlq_count"], value=dlq)

    @staticmethod
    def _redis_families(cluster: stats.ClusterStats, queues: list[str]) -> Iterator[Metric]:
        for name in stats.COUNTERS:
            family = CounterMetricFamily(_name(name), HELP[name], labels=["queue"])
            for queue in queues:  # zeros too: rate() then sees a queue's first increment
                family.add_metric([queue], cluster.counters[name].get(queue, 0.0))
            yield family
        empty = stats.Histogram([(label, 0.0) for label in stats.BUCKET_LABELS], 0.0)
        for name in stats.HISTOGRAMS:
            family = HistogramMetricFamily(_name(name), HELP[name], labels=["queue"])
            for queue in queues:
                histogram = cluster.histograms[name].get(queue, empty)
                family.add_metric([queue], histogram.buckets, histogram.sum)
            yield family
        utilization = GaugeMetricFamily(
            _name("worker_utilization"), HELP["worker_utilization"], labels=["queue"]
        )
        for queue in queues:
            serving = [w for w in cluster.workers if _serves(w, queue)]
            slots = sum(int(w.get("slots", 0)) for w in serving)
            if slots:  # no live worker serves it: no figure rather than a made-up 0
                utilization.add_metric([queue], sum(int(w.get("busy", 0)) for w in serving) / slots)
        yield utilization
        yield GaugeMetricFamily(_name("workers_online"), HELP["workers_online"], value=len(cluster.workers))


def _serves(worker: dict[str, str], queue: str) -> bool:
    """A worker started without --queues announces "*" and serves every queue."""
    served = worker.get("queues", "*")
    return served == "*" or queue in served.split(",")


_cluster_collector = ClusterCollector()


class _Scrape:
    """What one scrape exports: this host's process metrics, then the cluster's."""

    def collect(self) -> Iterator[Metric]:
        # prometheus_client reads the same variable; it is the library's switch, not our config.
        if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            yield from registry.collect()
        else:
            yield from REGISTRY.collect()
        yield from _cluster_collector.collect()


@login_not_required
def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus exposition (text or OpenMetrics, as the scraper asks); open to any client.

    A plain Django view, so DRF's default authentication and throttling never apply to it.
    """
    if request.method not in ("GET", "HEAD"):
        # Imported here: taskforge_site.errors loads DRF, whose settings import it back.
        from taskforge_site.errors import error_body

        body = error_body("method_not_allowed", f'Method "{request.method}" not allowed.')
        return JsonResponse(body, status=405)
    encoder, content_type = exposition.choose_encoder(request.headers.get("Accept", ""))
    return HttpResponse(encoder(_Scrape()), content_type=content_type)  # type: ignore[arg-type]
