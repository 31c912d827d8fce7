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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis
from django.conf import settings
from redis.backoff import NoBackoff
from redis.retry import Retry

from workers import keys

logger = logging.getLogger("taskforge.broker")


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


def publish(jobs: Sequence[ReadyJob]) -> None:
    """Adds jobs to their ready queues and wakes idle workers (idempotent: ZADD)."""
    if not jobs:
        return
    by_queue: dict[str, dict[str, int]] = {}
    for job in jobs:
        by_queue.setdefault(job.queue, {})[str(job.id)] = ready_score(job.priority, job.queued_at)
    pipe = client().pipeline(transaction=False)
    for queue, members in by_queue.items():
        pipe.zadd(keys.queue_key(queue), members)
    pipe.sadd(keys.QUEUES, *by_queue)
    for queue in by_queue:
        pipe.publish(keys.WAKEUP_CHANNEL, queue)
    pipe.execute()


def publish_quietly(jobs: Sequence[ReadyJob]) -> bool:
    """publish(), but a Redis outage only logs: the job is safe in Postgres and reconciled later."""
    try:
        publish(jobs)
        return True
    except redis.RedisError as exc:
        logger.warning(
            "publish to redis failed; the scheduler will re-publish",
            extra={"error": str(exc), "jobs": len(jobs)},
        )
        return False


# Pops up to ARGV[2] ids from the queues in KEYS[2..] into the in-flight ZSET KEYS[1] (score:
# pop time ARGV[1]), atomically, so an id is never only in a worker's memory. ARGV[3] "fair"
# takes one id from each queue in turn; "ordered" drains queues in the order given. ARGV[4..]
# are ids of the previous pop that Postgres has decided on: acknowledged here, saving a trip.
_POP_SCRIPT = """
if #ARGV > 3 then redis.call('ZREM', KEYS[1], unpack(ARGV, 4)) end
local want = tonumber(ARGV[2])
local out = {}
if ARGV[3] == 'fair' then
  local active = {}
  for i = 2, #KEYS do active[#active + 1] = KEYS[i] end
  while #out < want and #active > 0 do
    local still = {}
    for _, k in ipairs(active) do
      if #out < want then
        local r = redis.call('ZPOPMIN', k, 1)
        if #r > 0 then
          out[#out + 1] = r[1]
          still[#still + 1] = k
        end
      end
    end
    active = still
  end
else
  for i = 2, #KEYS do
    local need = want - #out
    if need <= 0 then break end
    local r = redis.call('ZPOPMIN', KEYS[i], need)
    for j = 1, #r, 2 do out[#out + 1] = r[j] end
  end
end
if #out > 0 then
  local args = {}
  for _, id in ipairs(out) do
    args[#args + 1] = ARGV[1]
    args[#args + 1] = id
  end
  redis.call('ZADD', KEYS[1], unpack(args))
end
return out
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


@functools.cache
def _scripts() -> dict[str, Any]:
    r = client()
    return {
        "pop": r.register_script(_POP_SCRIPT),
        "unlock": r.register_script(_UNLOCK_SCRIPT),
        "set_epoch": r.register_script(_SET_EPOCH_SCRIPT),
    }


def pop_ready(
    queues: Sequence[str], count: int, *, fair: bool, ack: Sequence[uuid.UUID] = ()
) -> list[uuid.UUID]:
    """Moves up to `count` ids from the ready queues to in-flight and returns them.

    `ack` acknowledges the ids of an earlier pop in the same round trip (see ack_inflight).
    """
    if not queues or count <= 0:
        ack_inflight(ack)
        return []
    ids = _scripts()["pop"](
        keys=[keys.INFLIGHT, *(keys.queue_key(q) for q in queues)],
        args=[int(time.time() * 1000), count, "fair" if fair else "ordered", *map(str, ack)],
    )
    return [uuid.UUID(i) for i in ids]


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
    if members:
        client().zrem(keys.INFLIGHT, *members)


def stale_inflight(older_than_ms: int, limit: int) -> list[uuid.UUID]:
    """Ids popped more than `older_than_ms` ago and never acknowledged (their worker died)."""
    cutoff = int(time.time() * 1000) - older_than_ms
    ids = client().zrangebyscore(keys.INFLIGHT, "-inf", cutoff, start=0, num=limit)
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


def release_lock(name: str, token: str) -> None:
    """Releases a lock we own (no-op if it expired and someone else took it)."""
    _scripts()["unlock"](keys=[keys.lock_key(name)], args=[token])


def epoch_exists() -> bool:
    """False when Redis lost its data since the last full sync from Postgres."""
    return bool(client().exists(keys.EPOCH))


def set_epoch_if_locked(lock_name: str, token: str) -> bool:
    """Marks Redis as fully synced, unless it restarted during the sync."""
    return bool(
        _scripts()["set_epoch"](keys=[keys.lock_key(lock_name), keys.EPOCH], args=[token, str(time.time())])
    )


def record_worker(worker_id: str, info: dict[str, Any], ttl_seconds: float) -> None:
    """Worker heartbeat: its info hash (with TTL) and its last-seen time."""
    pipe = client().pipeline(transaction=False)
    pipe.hset(keys.worker_key(worker_id), mapping={k: str(v) for k, v in info.items()})
    pipe.pexpire(keys.worker_key(worker_id), int(ttl_seconds * 1000))
    pipe.zadd(keys.WORKERS, {worker_id: time.time()})
    pipe.execute()


def forget_worker(worker_id: str) -> None:
    """Removes a worker that shut down cleanly."""
    pipe = client().pipeline(transaction=False)
    pipe.delete(keys.worker_key(worker_id))
    pipe.zrem(keys.WORKERS, worker_id)
    pipe.execute()


class Wakeup:
    """Listens on the wake-up channel in a daemon thread, so idle workers react at once.

    A missed message only costs the poll interval: the worker pops again after it anyway.
    """

    def __init__(self) -> None:
        self.event = threading.Event()
        self._thread = threading.Thread(target=self._listen, name="taskforge-wakeup", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _listen(self) -> None:
        while True:
            # Its own connection without a read timeout: a quiet channel is not an error.
            pubsub = _make_client(socket_timeout=None).pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(keys.WAKEUP_CHANNEL)
                for _message in pubsub.listen():
                    self.event.set()
            except (redis.RedisError, OSError, ValueError) as exc:
                logger.warning("wake-up listener lost redis; retrying", extra={"error": str(exc)})
                self.event.set()  # make the worker poll while we reconnect
                time.sleep(1.0)
            finally:
                pubsub.close()
