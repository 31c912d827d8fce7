"""Every Redis key TaskForge uses, built in one place.

Redis holds only what can be rebuilt from Postgres; a flush or restart loses no job.

- ``taskforge:queue:{name}`` ZSET job id -> score (priority, then queue time); no TTL.
  Written by enqueue and the scheduler (promote, reconcile); popped by workers.
- ``taskforge:queues`` SET of queue names ever published; read by workers serving every queue.
- ``taskforge:paused`` SET of the ready-queue *keys* of paused queues; mirrors queue_settings
  (the scheduler re-syncs it every tick); the pop script skips them.
- ``taskforge:limits`` HASH queue name -> "rate|concurrency" (either may be empty); mirrors
  queue_settings (re-synced every tick); read by the pop script.
- ``taskforge:rate:{name}`` HASH tokens, ts: the queue's token bucket (burst = one second of
  tokens), shared by every worker; expires after a minute idle (it is full by then).
- ``taskforge:running:{name}`` ZSET "job id|worker id" -> slot expiry (ms): the queue's concurrency
  semaphore. Taken by the pop script, renewed with the lease, freed at settle; an expired
  entry frees its slot, so a crashed worker gives its slots back.
- ``taskforge:inflight`` ZSET job id -> pop time (ms). The pop script adds, the claim acks, the
  scheduler returns ids older than a few seconds to their queue.
- ``taskforge:wakeup`` pub/sub channel (message: queue name); publish wakes idle workers.
- ``taskforge:epoch`` STRING, time of the last full sync from Postgres; missing means Redis lost
  its data, and the scheduler re-publishes every QUEUED job.
- ``taskforge:workers`` ZSET worker id -> last heartbeat (s); ``taskforge:worker:{id}`` HASH of
  host, pid, queues, slots, busy, started_at with a TTL of one lease. Written by workers.
- ``taskforge:throughput:{minute}`` HASH "queue|succeeded" / "queue|failed" -> count for one
  UTC minute (epoch minutes), kept 2 hours; workers add per settle batch, the scheduler adds
  lease expiries; read by GET /stats.
- ``taskforge:counts:finished`` HASH "queue|state" -> jobs, plus "_as_of"; finished-state
  counts refreshed by one scheduler every minute, so GET /stats never counts finished rows.
- ``taskforge:lock:{name}`` STRING owner token, SET NX PX; scheduler locks (resync, prune).
- ``taskforge:reconcile:cursor`` STRING "queued_at|id" where the scheduler's sweep resumes.
- ``taskforge:stats:counter:{name}`` HASH queue -> count since Redis last started (e.g.
  ``job_attempts_total``); no TTL. Workers and schedulers add to it (HINCRBY, batched about once
  a second by workers/metrics.py); the API's /metrics reads it. Redis losing it resets the
  counters, which Prometheus' rate() treats as a counter reset.
- ``taskforge:stats:histogram:{name}`` HASH "{queue}|{le}" -> observations in that bucket alone
  (not cumulative; le "+Inf" past the last bound) and "{queue}|sum" -> seconds (HINCRBYFLOAT);
  no TTL. Same writers and reader as the counters.
"""

PREFIX = "taskforge:"
QUEUES = PREFIX + "queues"
INFLIGHT = PREFIX + "inflight"
PAUSED = PREFIX + "paused"
LIMITS = PREFIX + "limits"
RATE_PREFIX = PREFIX + "rate:"
RUNNING_PREFIX = PREFIX + "running:"
WAKEUP_CHANNEL = PREFIX + "wakeup"
EPOCH = PREFIX + "epoch"
WORKERS = PREFIX + "workers"
RECONCILE_CURSOR = PREFIX + "reconcile:cursor"
FINISHED_COUNTS = PREFIX + "counts:finished"
THROUGHPUT_TTL_SECONDS = 2 * 3600


def throughput_key(minute: int) -> str:
    """Outcome counts of one UTC minute (minutes since the epoch)."""
    return f"{PREFIX}throughput:{minute}"


def queue_key(name: str) -> str:
    """The ready ZSET of one queue."""
    return f"{PREFIX}queue:{name}"


def rate_key(name: str) -> str:
    """One queue's token bucket."""
    return RATE_PREFIX + name


def running_key(name: str) -> str:
    """One queue's concurrency semaphore."""
    return RUNNING_PREFIX + name


def worker_key(worker_id: str) -> str:
    """One worker's heartbeat hash."""
    return f"{PREFIX}worker:{worker_id}"


def stats_counter_key(name: str) -> str:
    """A cluster-wide counter, one field per queue."""
    return f"{PREFIX}stats:counter:{name}"


def stats_histogram_key(name: str) -> str:
    """A cluster-wide histogram, one field per queue and bucket plus one sum per queue."""
    return f"{PREFIX}stats:histogram:{name}"


def lock_key(name: str) -> str:
    """A named SET NX PX lock."""
    return f"{PREFIX}lock:{name}"
