"""Cluster-wide job metrics: counted in memory per process, added to Redis about once a second.

Workers and schedulers on any host call the small recording functions below; they only touch
a dict under a lock, so the worker's hot path never waits on Redis. A flusher thread adds the
accumulated increments to the ``taskforge:stats:*`` hashes (workers/keys.py) in ONE pipeline
per flush, and once more at shutdown. The API's /metrics reads the same hashes with
``read_stats`` (taskforge_site/metrics.py), so one scrape of any API instance shows the whole
cluster. Redis losing the hashes resets the counters; Prometheus treats that as a counter
reset. A flush that fails keeps its increments for the next one.
"""

from __future__ import annotations

import bisect
import logging
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import redis
from prometheus_client.utils import floatToGoString

from workers import broker, keys

logger = logging.getLogger("taskforge.metrics")

FLUSH_INTERVAL_SECONDS = 1.0

# Counter names (Redis hash per name, field per queue); /metrics prefixes them with taskforge_.
ATTEMPTS = "job_attempts_total"
SUCCESS = "job_success_total"
FAILURE = "job_failure_total"
LEASE_TIMEOUTS = "lease_timeouts_total"
THROTTLED = {
    "concurrency": "worker_concurrency_throttled_total",
    "rate": "worker_rate_throttled_total",
}
COUNTERS = (ATTEMPTS, SUCCESS, FAILURE, LEASE_TIMEOUTS, *THROTTLED.values())

# Histogram names; both cover a noop job (milliseconds) up to an hour-long backlog or job.
RUNTIME = "job_runtime_seconds"
TIME_IN_QUEUE = "job_time_in_queue_seconds"
HISTOGRAMS = (RUNTIME, TIME_IN_QUEUE)
BUCKETS = (
    0.001,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
    900.0,
    3600.0,
)
# Prometheus spells the bounds like Go does ("1.0", "+Inf"); the Redis fields use the same text.
BUCKET_LABELS = (*(floatToGoString(b) for b in BUCKETS), "+Inf")


class Recorder:
    """This process's increments since the last flush: (redis key, field) -> amount."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ints: dict[tuple[str, str], int] = {}
        self._floats: dict[tuple[str, str], float] = {}
        self._expiring: dict[str, int] = {}  # key -> TTL seconds, for windowed keys

    def add(self, counts: Iterable[tuple[str, str, int]]) -> None:
        """Adds (counter name, queue, n) increments."""
        with self._lock:
            for name, queue, n in counts:
                field = (keys.stats_counter_key(name), queue)
                self._ints[field] = self._ints.get(field, 0) + n

    def observe(self, observations: Iterable[tuple[str, str, float]]) -> None:
        """Adds (histogram name, queue, seconds) observations: one bucket and the sum each."""
        with self._lock:
            for name, queue, seconds in observations:
                key = keys.stats_histogram_key(name)
                bucket = (key, f"{queue}|{BUCKET_LABELS[bisect.bisect_left(BUCKETS, seconds)]}")
                self._ints[bucket] = self._ints.get(bucket, 0) + 1
                total = (key, f"{queue}|sum")
                self._floats[total] = self._floats.get(total, 0.0) + seconds

    def add_windowed(self, key: str, ttl_seconds: int, counts: Iterable[tuple[str, int]]) -> None:
        """Adds (field, n) increments to a key that expires (per-minute throughput buckets)."""
        with self._lock:
            self._expiring[key] = ttl_seconds
            for field, n in counts:
                self._ints[(key, field)] = self._ints.get((key, field), 0) + n

    def flush(self, client: redis.Redis) -> bool:
        """Adds everything recorded so far to Redis in one pipeline; on failure keeps it for later."""
        with self._lock:
            ints, self._ints = self._ints, {}
            floats, self._floats = self._floats, {}
            expiring, self._expiring = self._expiring, {}
        if not ints and not floats:
            return True
        pipe = client.pipeline(transaction=False)
        for (key, field), n in ints.items():
            pipe.hincrby(key, field, n)
        for (key, field), seconds in floats.items():
            pipe.hincrbyfloat(key, field, seconds)
        for key, ttl in expiring.items():
            pipe.expire(key, ttl)
        try:
            pipe.execute()
            return True
        except redis.RedisError as exc:
            logger.warning("could not flush metrics to redis; will retry", extra={"error": str(exc)})
            with self._lock:  # a partly applied pipeline may count some twice; never loses any
                self._expiring.update(expiring)
                for field, n in ints.items():
                    self._ints[field] = self._ints.get(field, 0) + n
                for field, seconds in floats.items():
                    self._floats[field] = self._floats.get(field, 0.0) + seconds
            return False


_recorder = Recorder()


def count(name: str, queue: str, n: int = 1) -> None:
    """Adds n to a cluster-wide counter (one of COUNTERS) for a queue."""
    _recorder.add([(name, queue, n)])


def count_throttled(queue: str, kind: str) -> None:
    """A worker held back a waiting job of `queue`: kind "concurrency" (no free slot) or "rate"."""
    _recorder.add([(THROTTLED[kind], queue, 1)])


def count_per_queue(name: str, queues: Iterable[str]) -> None:
    """Adds one to a counter per item, e.g. each expired lease's queue."""
    totals: dict[str, int] = {}
    for queue in queues:
        totals[queue] = totals.get(queue, 0) + 1
    _recorder.add((name, queue, n) for queue, n in totals.items())


def record_claimed(claimed: Iterable[tuple[str, float]]) -> None:
    """One attempt per claimed job, given as (queue, seconds from QUEUED to claimed)."""
    claimed = list(claimed)
    _recorder.add((ATTEMPTS, queue, 1) for queue, _ in claimed)
    _recorder.observe((TIME_IN_QUEUE, queue, waited) for queue, waited in claimed)


def _count_this_minute(outcomes: Iterable[tuple[str, str]]) -> None:
    """(queue, "succeeded"|"failed") into this minute's throughput bucket, read by GET /stats."""
    totals: dict[str, int] = {}
    for queue, outcome in outcomes:
        totals[f"{queue}|{outcome}"] = totals.get(f"{queue}|{outcome}", 0) + 1
    if totals:
        key = keys.throughput_key(int(time.time() // 60))
        _recorder.add_windowed(key, keys.THROUGHPUT_TTL_SECONDS, totals.items())


def record_settled(settled: Iterable[tuple[str, str, float]]) -> None:
    """Settled attempts as (queue, new state, handler seconds): success, failure and runtime."""
    settled = list(settled)
    outcome = {"SUCCEEDED": SUCCESS, "RETRYING": FAILURE, "DLQ": FAILURE}
    _recorder.add((outcome[state], queue, 1) for queue, state, _ in settled if state in outcome)
    _recorder.observe((RUNTIME, queue, runtime) for queue, _, runtime in settled)
    _count_this_minute(
        (queue, "succeeded" if state == "SUCCEEDED" else "failed")
        for queue, state, _ in settled
        if state in outcome
    )


def record_lease_timeouts(queues: Iterable[str]) -> None:
    """Expired leases, per job's queue: failed attempts the scheduler noticed."""
    queues = list(queues)
    count_per_queue(LEASE_TIMEOUTS, queues)
    _count_this_minute((queue, "failed") for queue in queues)


def flush() -> bool:
    """Adds this process's pending increments to Redis now (the flusher does it every second)."""
    return _recorder.flush(broker.client())


class Flusher:
    """Daemon thread flushing the recorder every FLUSH_INTERVAL_SECONDS; `stop()` flushes once more."""

    def __init__(self, interval: float = FLUSH_INTERVAL_SECONDS) -> None:
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="taskforge-metrics", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            flush()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        flush()


# ---- reading (the API's /metrics) ----------------------------------------------------------


@dataclass(frozen=True)
class Histogram:
    """One queue's histogram: cumulative (le, count) pairs ending with +Inf, and the sum."""

    buckets: list[tuple[str, float]]
    sum: float


@dataclass(frozen=True)
class ClusterStats:
    """Everything /metrics reads from Redis, in one snapshot."""

    queues: set[str]
    counters: dict[str, dict[str, float]]
    histograms: dict[str, dict[str, Histogram]]
    workers: list[dict[str, str]]


def _histograms(raw: Mapping[str, str]) -> dict[str, Histogram]:
    per_queue: dict[str, dict[str, float]] = {}
    for field, value in raw.items():
        queue, _, label = field.rpartition("|")
        per_queue.setdefault(queue, {})[label] = float(value)
    result = {}
    for queue, fields in per_queue.items():
        running, buckets = 0.0, []
        for label in BUCKET_LABELS:  # bounds no longer in BUCKETS are ignored
            running += fields.get(label, 0.0)
            buckets.append((label, running))
        result[queue] = Histogram(buckets, fields.get("sum", 0.0))
    return result


def read_stats(client: redis.Redis, *, worker_max_age_seconds: float) -> ClusterStats:
    """The cluster's counters, histograms, known queues and live workers, in two round trips."""
    pipe = client.pipeline(transaction=False)
    pipe.smembers(keys.QUEUES)
    # Heartbeats are scored with each worker's clock; hosts are assumed NTP-synced.
    pipe.zrangebyscore(keys.WORKERS, time.time() - worker_max_age_seconds, "+inf")
    for name in COUNTERS:
        pipe.hgetall(keys.stats_counter_key(name))
    for name in HISTOGRAMS:
        pipe.hgetall(keys.stats_histogram_key(name))
    queues, worker_ids, *hashes = pipe.execute()
    counter_hashes, histogram_hashes = hashes[: len(COUNTERS)], hashes[len(COUNTERS) :]
    counters = {
        name: {queue: float(v) for queue, v in raw.items()}
        for name, raw in zip(COUNTERS, counter_hashes, strict=True)
    }
    histograms = {name: _histograms(raw) for name, raw in zip(HISTOGRAMS, histogram_hashes, strict=True)}
    workers: list[dict[str, str]] = []
    if worker_ids:
        pipe = client.pipeline(transaction=False)
        for worker_id in worker_ids:
            pipe.hgetall(keys.worker_key(worker_id))
        workers = [info for info in pipe.execute() if info]  # a missing hash expired: not live
    return ClusterStats(set(queues), counters, histograms, workers)
