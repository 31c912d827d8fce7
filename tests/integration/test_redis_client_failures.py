"""A Redis client failing with something other than RedisError never undoes a commit.

Found by the chaos suite (tests/chaos): while Redis restarted, redis-py raised AttributeError
from inside its connection handshake ("'NoneType' object has no attribute 'sendall'"), which is
not a RedisError. The after-commit publish let it through, so POST /dlq/replay answered 500
although the replay had committed; POST /jobs would answer 500 for a committed job, which a
client retrying without an idempotency key then creates twice. Here a real client talks to a
TCP peer whose answers make redis-py fail the same way in its handshake, every time.
"""

from __future__ import annotations

import socketserver
import threading
from collections.abc import Iterator

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from dlq.services import dead_letter_job
from jobs.models import Job
from jobs.services import enqueue_job
from jobs.states import JobState
from workers import broker

pytestmark = pytest.mark.django_db(transaction=True)


class _Garbled(socketserver.BaseRequestHandler):
    """Answers +OK to anything: redis-py's handshake then fails with AttributeError."""

    def handle(self) -> None:
        while self.request.recv(65536):
            self.request.sendall(b"+OK\r\n")


@pytest.fixture
def garbled_redis(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every broker call gets a new client, so every call goes through the failing handshake."""
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Garbled)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()

    def client() -> redis.Redis:
        port = server.server_address[1]
        return redis.Redis(host="127.0.0.1", port=port, socket_timeout=1, retry=Retry(NoBackoff(), 0))

    with pytest.raises(AttributeError):  # what the engine meets: not a RedisError
        client().ping()
    monkeypatch.setattr(broker, "client", client)
    yield
    server.shutdown()
    server.server_close()


def test_a_submission_is_acknowledged_once_committed_whatever_the_redis_client_raises(
    api, garbled_redis
) -> None:
    response = api.post("/jobs", {"jobType": "taskforge.noop"}, format="json")
    assert response.status_code == 201, response.content
    assert Job.objects.get(id=response.json()["id"]).state == JobState.QUEUED
    batch = api.post("/jobs/batch", {"jobs": [{"jobType": "taskforge.noop"}] * 3}, format="json")
    assert batch.status_code == 201, batch.content
    assert Job.objects.filter(state=JobState.QUEUED).count() == 4


def test_replays_and_cancels_answer_once_committed_whatever_the_redis_client_raises(
    api, garbled_redis
) -> None:
    dead = [enqueue_job("taskforge.noop").job.id for _ in range(2)]
    for job_id in dead:
        dead_letter_job(job_id)
    assert api.post(f"/dlq/{dead[0]}/replay").status_code == 200
    bulk = api.post("/dlq/replay", {"jobType": "taskforge.noop"}, format="json")
    assert (bulk.status_code, bulk.json()) == (200, {"replayed": 1})
    assert set(Job.objects.filter(id__in=dead).values_list("state", flat=True)) == {JobState.QUEUED}
    canceled = api.post(f"/jobs/{dead[0]}/cancel")
    assert canceled.status_code == 200, canceled.content
    assert Job.objects.get(id=dead[0]).state == JobState.CANCELED
