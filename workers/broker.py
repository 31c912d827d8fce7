"""The Redis transport: ready queues, in-flight tracking, wake-ups, locks, worker heartbeats.

Redis only ever holds job *ids*; Postgres decides what runs. Losing anything here delays jobs
(the scheduler re-publishes from Postgres) but never loses one.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
import uuid
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis
from django.conf import settings
from redis.backoff import NoBackoff
from redis.retry import Retry

from workers import keys

logger = logging.getLogger("taskforge.broker")


# Redis' Lua unpack() takes at most ~8,000 values: pops and acks go in chunks below that.
MAX_SCRIPT_IDS = 1000
WORKER_FORGET_SECONDS = 24 * 3600


@dataclass(frozen=True)
class ReadyJob:
    """What the ready queue needs to order a job."""

    id: uuid.UUID
    queue: str
    priority: int
    queued_at: datetime

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> ReadyJob:
        return cls(row["id"], row["queue"], row["priority"], row["queued_at"])


def ready_score(priority: int, queued_at: datetime) -> int:
    """Higher priority first, then oldest first; exact in a double until the year 2286."""
    return (100 - priority) * 10**13 + int(queued_at.timestamp() * 1000)


def _make_client(socket_timeout: float | None, **extra: Any) -> redis.Redis:
    cfg = settings.TASKFORGE
    common: dict[str, Any] = {
        "db": cfg.redis_db,
        "password": cfg.redis_password or None,
        "decode_responses": True,
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": 2.0,
        "health_check_interval": 15,
        **extra,
    }
    if cfg.redis_unix_socket:
        return redis.Redis(unix_socket_path=cfg.redis_unix_socket, **common)
    return redis.Redis(host=cfg.redis_host, port=cfg.redis_port, **common)


@functools.cache
def client() -> redis.Redis:
    """This process's Redis client (thread-safe, pooled); commands time out after 5 s."""
    return _make_client(socket_timeout=5.0)


@functools.cache
def _probe_client() -> redis.Redis:
    # One try with short timeouts: a readiness probe must answer fast, not retry for seconds.
    return _make_client(socket_timeout=1.0, socket_connect_timeout=1.0, retry=Retry(NoBackoff(), 0))


def ping() -> None:
    """Raises RedisError unless Redis answers within about a second."""
    _probe_client().ping()


def fast_client() -> redis.Redis:
    """A client that gives up after about a second, for answers that must not hang (/metrics)."""
    return _probe_client()


# The publish script: ZADDs ids into their ready queues, registers the queues and wakes idle
# workers, as one command. KEYS[1] is the known-queues set, KEYS[1 + i] queue i's ready ZSET;
# ARGV[1] the wake-up channel, ARGV[2] the number of queues, then per queue its name and
# member count, then every queue's (score, id) pairs in queue order. ZADD takes the pairs in
# slices: unpack() of a whole large batch would overflow Lua's stack.
_PUBLISH_SCRIPT = """
local n = tonumber(ARGV[2])
local at = 3 + 2 * n
for i = 1, n do
  local name, count = ARGV[1 + 2 * i], tonumber(ARGV[2 + 2 * i])
  local last = at + 2 * count - 1
  for first = at, last, 2000 do
    redis.call('ZADD', KEYS[1 + i], unpack(ARGV, first, math.min(first + 1999, last)))
  end
  at = last + 1
  redis.call('SADD', KEYS[1], name)
  redis.call('PUBLISH', ARGV[1], name)
end
return n
"""


def publish(jobs: Sequence[ReadyJob]) -> None:
    """Adds jobs to their ready queues and wakes idle workers (idempotent: ZADD).

    One script call however many queues: it was a pipeline of three commands per queue, each
    packed and parsed by redis-py in Python (about 10 µs more client CPU per publish).
    """
    if not jobs:
        return
    by_queue: dict[str, list[Any]] = {}
    for job in jobs:
        by_queue.setdefault(job.queue, []).extend((ready_score(job.priority, job.queued_at), str(job.id)))
    header: list[Any] = [keys.WAKEUP_CHANNEL, len(by_queue)]
    for queue, pairs in by_queue.items():
        header += [queue, len(pairs) // 2]
    _run_script(
        "publish",
        keys=[keys.QUEUES, *map(keys.queue_key, by_queue)],
        args=header + [item for pairs in by_queue.values() for item in pairs],
    )


# The "quietly" steps below catch any exception, not only RedisError. They tell Redis about a
# change Postgres has already committed, so no failure of theirs may turn that commit into an
# error. redis-py does not wrap every failure: a connection torn down in its handshake (Redis
# restarting) raised AttributeError, and a committed replay answered 500 (found by tests/chaos).
def _failure(exc: Exception) -> dict[str, str]:
    return {"error": f"{type(exc).__name__}: {exc}"}


def publish_quietly(jobs: Sequence[ReadyJob]) -> bool:
    """publish(), but a Redis outage only logs: the job is safe in Postgres and reconciled later."""
    try:
        publish(jobs)
        return True
    except Exception as exc:
        logger.warning(
            "publish to redis failed; the scheduler will re-publish",
            extra={**_failure(exc), "jobs": len(jobs)},
        )
        return False


def remove_ready_quietly(jobs: Sequence[tuple[str, uuid.UUID]]) -> None:
    """Drops (queue, id) pairs from the ready queues, e.g. canceled jobs; workers skip them anyway."""
    if not jobs:
        return
    try:
        pipe = client().pipeline(transaction=False)
        for queue, job_id in jobs:
            pipe.zrem(keys.queue_key(queue), str(job_id))
        pipe.execute()
    except Exception as exc:
        logger.warning("could not drop ids from redis; workers will skip them", extra=_failure(exc))


# The pop script: moves up to ARGV[2] ids from the ready queues KEYS[4..] into the in-flight
# ZSET KEYS[1] (score: pop time), atomically, so an id is never only in a worker's memory.
# - Queues in the paused set KEYS[2] are skipped.
# - Limits (KEYS[3], "rate|concurrency" per queue name; ARGV[4] is the default rate) are
#   cluster-wide: a token bucket per queue (burst = one second of tokens) and a semaphore ZSET
#   per queue (job id -> lease expiry ms; expired entries free their slot, so a crashed worker
#   gives its slots back). Jobs held back stay in their ready queue.
# - ARGV[3] "fair" takes one id from each queue in turn; "ordered" drains them in order.
# - Semaphore members are "job id|holder" (ARGV[8], the worker), so a worker freeing its slot
#   never frees another's for the same job after a lost lease.
# - ARGV[10+n..] acknowledge ids of an earlier pop that Postgres has decided on.
# Returns {ids, queue index per id, {queue, "rate"|"concurrency", ...} held back, ms until the
# next rate token, indices of concurrency-limited queues}.
_POP_SCRIPT = """
local now = tonumber(ARGV[1])
local want = tonumber(ARGV[2])
local n = tonumber(ARGV[9])
if #ARGV > 9 + n then redis.call('ZREM', KEYS[1], unpack(ARGV, 10 + n)) end
local queues, throttled, limited, wait_ms = {}, {}, {}, 0
for i = 1, n do
  local key = KEYS[3 + i]
  if redis.call('SISMEMBER', KEYS[2], key) == 0 and redis.call('ZCARD', key) > 0 then
    local name = ARGV[9 + i]
    local q = {key = key, index = i, allowance = want, taken = {}}
    local rate, conc = tonumber(ARGV[4]), 0
    local spec = redis.call('HGET', KEYS[3], name)
    if spec then
      local r, c = string.match(spec, '^([^|]*)|([^|]*)$')
      if r ~= '' then rate = tonumber(r) end
      if c ~= '' then conc = tonumber(c) end
    end
    if conc > 0 then
      q.running = ARGV[7] .. name
      limited[#limited + 1] = i
      redis.call('ZREMRANGEBYSCORE', q.running, '-inf', now)
      q.allowance = math.min(q.allowance, conc - redis.call('ZCARD', q.running))
      if q.allowance <= 0 then
        throttled[#throttled + 1] = name
        throttled[#throttled + 1] = 'concurrency'
      end
    end
    if rate > 0 and q.allowance > 0 then
      q.bucket, q.burst = ARGV[6] .. name, math.max(1, rate)
      local state = redis.call('HMGET', q.bucket, 'tokens', 'ts')
      local tokens = tonumber(state[1]) or q.burst
      local last = tonumber(state[2]) or now
      q.tokens = math.min(q.burst, tokens + math.max(0, now - last) * rate / 1000)
      if q.tokens < 1 then
        throttled[#throttled + 1] = name
        throttled[#throttled + 1] = 'rate'
        local w = math.ceil((1 - q.tokens) * 1000 / rate)
        if wait_ms == 0 or w < wait_ms then wait_ms = w end
      end
      q.allowance = math.min(q.allowance, math.floor(q.tokens))
    end
    if q.allowance > 0 then queues[#queues + 1] = q end
  end
end
local ids, qidx = {}, {}
local function take(q, k)
  local r = redis.call('ZPOPMIN', q.key, k)
  for j = 1, #r, 2 do
    ids[#ids + 1] = r[j]
    qidx[#qidx + 1] = q.index
    q.taken[#q.taken + 1] = r[j]
  end
  q.allowance = q.allowance - #r / 2
  if #r == 0 then q.allowance = 0 end
end
if ARGV[3] == 'fair' then
  local more = true
  while #ids < want and more do
    more = false
    for _, q in ipairs(queues) do
      if #ids < want and q.allowance > 0 then
        take(q, 1)
        more = more or q.allowance > 0
      end
    end
  end
else
  for _, q in ipairs(queues) do
    if #ids < want then take(q, math.min(want - #ids, q.allowance)) end
  end
end
for _, q in ipairs(queues) do
  if #q.taken > 0 then
    if q.bucket then
      redis.call('HSET', q.bucket, 'tokens', q.tokens - #q.taken, 'ts', now)
      redis.call('PEXPIRE', q.bucket, 60000)  -- idle for a minute: the bucket is full anyway
    end
    if q.running then
      for _, id in ipairs(q.taken) do
        redis.call('ZADD', q.running, now + tonumber(ARGV[5]), id .. '|' .. ARGV[8])
      end
    end
  end
end
if #ids > 0 then
  local args = {}
  for _, id in ipairs(ids) do
    args[#args + 1] = now
    args[#args + 1] = id
  end
  redis.call('ZADD', KEYS[1], unpack(args))
end
return {ids, qidx, throttled, wait_ms, limited}
"""

# Removes and returns up to ARGV[2] in-flight ids whose pop time is at or before ARGV[1].
_TAKE_STALE_SCRIPT = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
if #ids > 0 then redis.call('ZREM', KEYS[1], unpack(ids)) end
return ids
"""

# Extends a lock's TTL only if we still own it.
_EXTEND_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""

# Deletes a lock only if we still own it.
_UNLOCK_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# Sets the epoch only if the resync lock is still ours: if Redis restarted during the resync,
# the lock is gone and the epoch stays unset, so the next tick syncs again.
_SET_EPOCH_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[2], ARGV[2])
  return 1
end
return 0
"""


_SCRIPTS = {
    "publish": _PUBLISH_SCRIPT,
    "pop": _POP_SCRIPT,
    "unlock": _UNLOCK_SCRIPT,
    "set_epoch": _SET_EPOCH_SCRIPT,
    "take_stale": _TAKE_STALE_SCRIPT,
    "extend": _EXTEND_SCRIPT,
}


@functools.cache
def _script(name: str) -> Any:
    """The script's sha and source (redis-py computes the sha); _run_script runs it on the
    current client, not on the one it was registered with."""
    return client().register_script(_SCRIPTS[name])


def _run_script(name: str, *, keys: list[Any], args: list[Any]) -> Any:
    """Runs a script (EVALSHA, loading it on NOSCRIPT) on this process's current client.

    On a connection of the client's pool with the client's retry (reconnect on a dropped
    connection), as a command would, but without redis-py's command layer: its per-command
    observability and option handling cost about 70 µs of CPU per enqueue, a tenth of it.
    """
    script = _script(name)
    command = ("EVALSHA", script.sha, len(keys), *keys, *args)
    pool = client().connection_pool
    conn = pool.get_connection()
    try:
        return conn.retry.call_with_retry(
            lambda: _evalsha(conn, script.script, command), lambda _error: conn.disconnect()
        )
    finally:
        pool.release(conn)


def _evalsha(conn: redis.Connection, source: str, command: tuple[Any, ...]) -> Any:
    conn.send_command(*command)
    try:
        return conn.read_response()
    except redis.exceptions.NoScriptError:  # Redis restarted or flushed its scripts
        conn.send_command("SCRIPT", "LOAD", source)
        conn.read_response()
        conn.send_command(*command)
        return conn.read_response()


@dataclass(frozen=True)
class Popped:
    """What one pop got: ids with their queues, and what the limits held back."""

    ids: list[uuid.UUID]
    queue_of: dict[uuid.UUID, str]
    limited: set[uuid.UUID]  # ids holding a concurrency slot of their queue
    throttled: list[tuple[str, str]]  # (queue, "rate" | "concurrency") with jobs held back
    wait_seconds: float  # until the next rate token, when rate limits held jobs back


def pop_ready(
    queues: Sequence[str],
    count: int,
    *,
    fair: bool,
    ack: Sequence[uuid.UUID] = (),
    default_rate: float = 0.0,
    lease_ms: int = 30_000,
    holder: str = "",
) -> Popped:
    """Moves up to `count` ids from the ready queues to in-flight, within the queues' limits.

    `ack` acknowledges the ids of an earlier pop in the same round trip (see ack_inflight).
    """
    if not queues or count <= 0 or len(ack) > MAX_SCRIPT_IDS:
        ack_inflight(ack)
        ack = ()
    if not queues or count <= 0:
        return Popped([], {}, set(), [], 0.0)
    ids, qidx, throttled, wait_ms, limited = _run_script(
        "pop",
        keys=[keys.INFLIGHT, keys.PAUSED, keys.LIMITS, *(keys.queue_key(q) for q in queues)],
        args=[
            int(time.time() * 1000),
            min(count, MAX_SCRIPT_IDS),
            "fair" if fair else "ordered",
            default_rate,
            lease_ms,
            keys.RATE_PREFIX,
            keys.RUNNING_PREFIX,
            holder,
            len(queues),
            *queues,
            *map(str, ack),
        ],
    )
    popped = [uuid.UUID(i) for i in ids]
    queue_of = {job_id: queues[int(i) - 1] for job_id, i in zip(popped, qidx, strict=True)}
    limited_queues = {queues[int(i) - 1] for i in limited}
    return Popped(
        ids=popped,
        queue_of=queue_of,
        limited={job_id for job_id, queue in queue_of.items() if queue in limited_queues},
        throttled=list(zip(throttled[::2], throttled[1::2], strict=True)),
        wait_seconds=int(wait_ms) / 1000,
    )


def release_slots(slots: Mapping[str, Iterable[uuid.UUID]], holder: str) -> None:
    """Frees `holder`'s concurrency slots (queue -> job ids) and wakes workers waiting for one."""
    pipe = client().pipeline(transaction=False)
    for queue, ids in slots.items():
        members = [f"{i}|{holder}" for i in ids]
        if members:
            pipe.zrem(keys.running_key(queue), *members)
            pipe.publish(keys.WAKEUP_CHANNEL, queue)
    if pipe:
        pipe.execute()


def renew_slots(slots: Mapping[str, Iterable[uuid.UUID]], holder: str, lease_ms: int) -> None:
    """Extends `holder`'s concurrency slots like leases (XX: a slot already expired stays free)."""
    expiry = int(time.time() * 1000) + lease_ms
    pipe = client().pipeline(transaction=False)
    for queue, ids in slots.items():
        members = {f"{i}|{holder}": expiry for i in ids}
        if members:
            pipe.zadd(keys.running_key(queue), members, xx=True)
    if pipe:
        pipe.execute()


def queues_with_backlog(queues: Sequence[str]) -> list[str]:
    """Those of `queues` whose ready queue holds ids right now (one pipeline of ZCARDs)."""
    if not queues:
        return []
    pipe = client().pipeline(transaction=False)
    for name in queues:
        pipe.zcard(keys.queue_key(name))
    return [name for name, size in zip(queues, pipe.execute(), strict=True) if size]


def ack_inflight(ids: Iterable[uuid.UUID]) -> None:
    """Forgets popped ids once Postgres has decided on them (claimed or not claimable)."""
    members = [str(i) for i in ids]
    pipe = client().pipeline(transaction=False)
    for start in range(0, len(members), MAX_SCRIPT_IDS):
        pipe.zrem(keys.INFLIGHT, *members[start : start + MAX_SCRIPT_IDS])
    if members:
        pipe.execute()


def mirror_queue_quietly(queue: str, paused: bool, limits: str | None) -> None:
    """Mirrors one queue's settings at once; the scheduler's sync repairs it if Redis is down."""
    try:
        pipe = client().pipeline(transaction=True)
        (pipe.sadd if paused else pipe.srem)(keys.PAUSED, keys.queue_key(queue))
        if limits:
            pipe.hset(keys.LIMITS, queue, limits)
        else:
            pipe.hdel(keys.LIMITS, queue)
        pipe.publish(keys.WAKEUP_CHANNEL, queue)  # a resumed or loosened queue may run now
        pipe.execute()
    except Exception as exc:
        logger.warning("could not mirror queue settings to redis; the scheduler will", extra=_failure(exc))


def sync_queue_settings(paused_queues: Iterable[str], limits: Mapping[str, str]) -> None:
    """Makes Redis' paused set and limits hash exactly these (Postgres' queue_settings rules)."""
    wanted = {keys.queue_key(q) for q in paused_queues}
    r = client()
    current = r.smembers(keys.PAUSED)
    pipe = r.pipeline(transaction=True)
    if wanted - current:
        pipe.sadd(keys.PAUSED, *(wanted - current))
    if current - wanted:
        pipe.srem(keys.PAUSED, *(current - wanted))
    pipe.delete(keys.LIMITS)
    if limits:
        pipe.hset(keys.LIMITS, mapping=dict(limits))
    pipe.execute()


def take_stale_inflight(older_than_ms: int, limit: int) -> list[uuid.UUID]:
    """Removes and returns ids popped more than `older_than_ms` ago and never acknowledged.

    Atomic: an id popped again meanwhile (a fresh score) stays in flight for its new owner.
    """
    cutoff = int(time.time() * 1000) - older_than_ms
    ids = _run_script("take_stale", keys=[keys.INFLIGHT], args=[cutoff, min(limit, MAX_SCRIPT_IDS)])
    return [uuid.UUID(i) for i in ids]


def known_queues() -> list[str]:
    """Every queue name ever published, for workers that serve all queues."""
    return sorted(client().smembers(keys.QUEUES))


def missing_from_redis(jobs: Sequence[ReadyJob]) -> list[ReadyJob]:
    """The jobs that are neither in their ready queue nor in flight."""
    if not jobs:
        return []
    pipe = client().pipeline(transaction=False)
    for job in jobs:
        pipe.zscore(keys.queue_key(job.queue), str(job.id))
        pipe.zscore(keys.INFLIGHT, str(job.id))
    scores = pipe.execute()
    return [job for i, job in enumerate(jobs) if scores[2 * i] is None and scores[2 * i + 1] is None]


def acquire_lock(name: str, ttl_ms: int) -> str | None:
    """SET NX PX lock; returns the owner token, or None when someone else holds it."""
    token = uuid.uuid4().hex
    return token if client().set(keys.lock_key(name), token, nx=True, px=ttl_ms) else None


def extend_lock(name: str, token: str, ttl_ms: int) -> bool:
    """Keeps a lock we own alive for another `ttl_ms`; False if we lost it."""
    return bool(_run_script("extend", keys=[keys.lock_key(name)], args=[token, ttl_ms]))


def release_lock(name: str, token: str) -> None:
    """Releases a lock we own (no-op if it expired and someone else took it)."""
    _run_script("unlock", keys=[keys.lock_key(name)], args=[token])


def epoch_exists() -> bool:
    """False when Redis lost its data since the last full sync from Postgres."""
    return bool(client().exists(keys.EPOCH))


def set_epoch_if_locked(lock_name: str, token: str) -> bool:
    """Marks Redis as fully synced, unless it restarted during the sync."""
    return bool(
        _run_script("set_epoch", keys=[keys.lock_key(lock_name), keys.EPOCH], args=[token, str(time.time())])
    )


def record_worker(worker_id: str, info: dict[str, Any], ttl_seconds: float) -> None:
    """Worker heartbeat: its info hash (with TTL) and its last-seen time."""
    pipe = client().pipeline(transaction=False)
    pipe.hset(keys.worker_key(worker_id), mapping={k: str(v) for k, v in info.items()})
    pipe.pexpire(keys.worker_key(worker_id), int(ttl_seconds * 1000))
    pipe.zadd(keys.WORKERS, {worker_id: time.time()})
    pipe.zremrangebyscore(keys.WORKERS, "-inf", time.time() - WORKER_FORGET_SECONDS)  # killed ones
    pipe.execute()


def forget_worker(worker_id: str) -> None:
    """Removes a worker that shut down cleanly."""
    pipe = client().pipeline(transaction=False)
    pipe.delete(keys.worker_key(worker_id))
    pipe.zrem(keys.WORKERS, worker_id)
    pipe.execute()


def throughput_by_minute(minutes: int) -> list[tuple[int, dict[tuple[str, str], int]]]:
    """(minute since the epoch, (queue, outcome) -> count) for the last `minutes` minutes, oldest
    first, the current one included."""
    now = int(time.time() // 60)
    span = range(now - minutes + 1, now + 1)
    pipe = client().pipeline(transaction=False)
    for minute in span:
        pipe.hgetall(keys.throughput_key(minute))
    series = []
    for minute, bucket in zip(span, pipe.execute(), strict=True):
        counts: dict[tuple[str, str], int] = {}
        for field, n in bucket.items():
            queue, _, outcome = field.rpartition("|")
            counts[(queue, outcome)] = int(n)
        series.append((minute, counts))
    return series


def throughput(minutes: int) -> dict[tuple[str, str], int]:
    """(queue, outcome) -> count over the last `minutes` minutes, the current one included."""
    totals: dict[tuple[str, str], int] = {}
    for _, counts in throughput_by_minute(minutes):
        for key, n in counts.items():
            totals[key] = totals.get(key, 0) + n
    return totals


def store_finished_counts(counts: Mapping[tuple[str, str], int]) -> None:
    """Replaces the cached finished-state counts (one scheduler computes them periodically)."""
    pipe = client().pipeline(transaction=True)
    pipe.delete(keys.FINISHED_COUNTS)
    pipe.hset(
        keys.FINISHED_COUNTS,
        mapping={"_as_of": str(time.time()), **{f"{q}|{s}": n for (q, s), n in counts.items()}},
    )
    pipe.execute()


def finished_counts() -> tuple[dict[tuple[str, str], int], float | None]:
    """The cached finished-state counts and when they were computed (None: not yet)."""
    raw = client().hgetall(keys.FINISHED_COUNTS)
    as_of = raw.pop("_as_of", None)
    counts = {}
    for field, n in raw.items():
        queue, _, state = field.rpartition("|")
        counts[(queue, state)] = int(n)
    return counts, float(as_of) if as_of else None


def online_workers(max_age_seconds: float) -> list[dict[str, str]]:
    """Workers whose heartbeat is younger than `max_age_seconds`, with their info and the time
    of that heartbeat (`last_seen`, epoch seconds)."""
    r = client()
    seen = r.zrangebyscore(keys.WORKERS, time.time() - max_age_seconds, "+inf", withscores=True)
    if not seen:
        return []
    pipe = r.pipeline(transaction=False)
    for worker_id, _ in seen:
        pipe.hgetall(keys.worker_key(worker_id))
    return [
        {**info, "last_seen": str(at)} for (_, at), info in zip(seen, pipe.execute(), strict=True) if info
    ]


class Wakeup:
    """Listens on the wake-up channel in a daemon thread, so idle workers react at once.

    A missed message only costs the poll interval: the worker pops again after it anyway.
    """

    def __init__(self, queues: Collection[str] | None = None) -> None:
        """`queues`: wake only for these (a worker given --queues); None: for any queue.

        Every idle worker that wakes pops; a worker dedicated to other queues would pop for
        nothing on each publish.
        """
        self.event = threading.Event()
        self._queues = frozenset(queues) if queues else None
        self._thread = threading.Thread(target=self._listen, name="taskforge-wakeup", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _listen(self) -> None:
        while True:
            # Its own connection without a read timeout: a quiet channel is not an error.
            pubsub = _make_client(socket_timeout=None).pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(keys.WAKEUP_CHANNEL)
                for message in pubsub.listen():  # each names the queue that has work
                    if self._queues is None or message["data"] in self._queues:
                        self.event.set()
            except (redis.RedisError, OSError, ValueError) as exc:
                logger.warning("wake-up listener lost redis; retrying", extra={"error": str(exc)})
                self.event.set()  # make the worker poll while we reconnect
                time.sleep(1.0)
            finally:
                pubsub.close()
