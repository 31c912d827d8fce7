"""The chaos load: a known set of jobs submitted at a steady rate, and the record of what was accepted.

Every order is a job with a known expected end. Orders go out through three channels, as real
clients send them: `POST /jobs` one at a time (several keep-alive threads), `POST /jobs/batch`,
and the Python API (`enqueue_jobs` in the tests.chaos.client process). Some orders carry an
idempotency key; some of those are sent again later (a repeat must return the same job) or
through two channels at once. A keyed order that got no 2xx is sent again (that is what keys are
for); an unkeyed one is counted as not acknowledged, and whatever it may have committed shows up
later as an unacknowledged job. Cancels and DLQ replays are sent over HTTP on a timer.
"""

from __future__ import annotations

import heapq
import queue
import random
import threading
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.chaos.stack import Api, ApiDown, Stack

CHANNELS = {"http": 0.15, "http-batch": 0.45, "python": 0.40}  # shares of the orders
HTTP_SINGLES_PER_SECOND = 25  # at most: one request per job is the costly way, for the API too
BATCH_MAX = 200  # a batch takes whatever waits, so a slow moment does not build a backlog
KEYED_SHARE = 0.4
REPEAT_SHARE = 0.05  # of the submissions: an accepted keyed order sent again
TWIN_SHARE = 0.02  # of new keyed orders: sent through two channels at once
HTTP_THREADS = 6
CANCEL_THREADS = 4
RETRY_PAUSE_SECONDS = 0.5
CANCEL_DEADLINE_SECONDS = 60.0
GAVE_UP = "not acknowledged (unkeyed, given up)"
TWICE = "sent twice at once"
# Python API argument names of the API's camelCase options.
PYTHON_NAMES = {
    "idempotencyKey": "idempotency_key",
    "maxAttempts": "max_attempts",
    "initialDelay": "initial_delay_ms",
    "backoff": "backoff",
    "delay": "delay_ms",
    "queue": "queue",
}


@dataclass
class Order:
    """One job the load wants accepted, and how it must end."""

    kind: str
    job_type: str
    payload: dict[str, Any]
    options: dict[str, Any]
    expect: str | None  # SUCCEEDED, DLQ, CANCELED; None: any finished state
    cancel_after: float | None = None
    job_id: str | None = None
    accepted_at: float | None = None  # wall clock
    cancel: str | None = None  # what the cancel request got: canceled, asked, too late, unknown

    @property
    def key(self) -> str | None:
        return self.options.get("idempotencyKey")

    def http_body(self) -> dict[str, Any]:
        return {"jobType": self.job_type, "payload": self.payload, **self.options}

    def python_spec(self) -> dict[str, Any]:
        spec = {"job_type": self.job_type, "payload": self.payload}
        return spec | {PYTHON_NAMES[name]: value for name, value in self.options.items()}


def _nothing(rng: random.Random) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class Kind:
    """One kind of job in the mix: how often, what to send, how it must end."""

    name: str
    weight: int
    job_type: str
    expect: str | None
    payload: Callable[[random.Random], dict[str, Any]] = _nothing
    options: Callable[[random.Random], dict[str, Any]] = _nothing
    cancel_after: Callable[[random.Random], float] | None = None

    def order(self, rng: random.Random) -> Order:
        after = self.cancel_after(rng) if self.cancel_after else None
        return Order(self.name, self.job_type, self.payload(rng), self.options(rng), self.expect, after)


RETRY_FAST = {"initialDelay": 100, "backoff": 2.0}
MIX = [  # weights in per mille
    Kind("noop", 560, "chaos.noop", "SUCCEEDED"),
    Kind("sleep", 150, "chaos.sleep", "SUCCEEDED", lambda r: {"seconds": round(r.uniform(0.01, 0.1), 3)}),
    Kind("long-sleep", 10, "chaos.sleep", "SUCCEEDED", lambda r: {"seconds": 1.5}),
    Kind(
        "fail-then-succeed",
        100,
        "chaos.fail",
        "SUCCEEDED",
        lambda r: {"times": r.choice([1, 2])},
        lambda r: {"maxAttempts": 5, **RETRY_FAST},
    ),
    Kind("fail-permanent", 20, "chaos.fail", "DLQ", lambda r: {"permanent": True}),
    Kind(
        "fail-exhausted",
        20,
        "chaos.fail",
        "DLQ",
        lambda r: {"times": 100},
        lambda r: {"maxAttempts": 2, **RETRY_FAST},
    ),
    Kind("replayed", 30, "chaos.flaky", "SUCCEEDED", options=lambda r: {"maxAttempts": 1}),
    Kind("delayed", 85, "chaos.noop", "SUCCEEDED", options=lambda r: {"delay": r.randint(500, 4000)}),
    Kind(
        "cancel-pending",
        20,
        "chaos.noop",
        "CANCELED",
        options=lambda r: {"delay": 60_000},
        cancel_after=lambda r: r.uniform(0.2, 2.0),
    ),
    Kind(
        "cancel-running",
        5,
        "chaos.sleep",
        "CANCELED",
        lambda r: {"seconds": 20},
        cancel_after=lambda r: r.uniform(1.0, 3.0),
    ),
]


@dataclass
class Submissions:
    """What was submitted and what was acknowledged; shared by every channel thread."""

    orders: dict[str, Order] = field(default_factory=dict)  # accepted job id -> order
    ids_by_key: dict[str, set[str]] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)  # "channel status"
    problems: list[str] = field(default_factory=list)
    max_latency: dict[str, float] = field(default_factory=dict)  # by HTTP status
    lock: threading.Lock = field(default_factory=threading.Lock)

    to_cancel: queue.SimpleQueue[Order] = field(default_factory=queue.SimpleQueue)
    keyed: list[Order] = field(default_factory=list)  # accepted orders with a key, to repeat

    def accepted(self, order: Order, job_id: str, repeat: bool) -> None:
        """A 2xx for `order`: the first makes it accepted; any later one must name the same job."""
        with self.lock:
            if order.key is not None:
                self.ids_by_key.setdefault(order.key, set()).add(job_id)
            if repeat:
                self.counts["idempotent repeats"] += 1
            if order.job_id is None:
                order.job_id, order.accepted_at = job_id, time.time()
                self.orders[job_id] = order
                self.counts["accepted"] += 1
                if order.key is not None:
                    self.keyed.append(order)
                if order.cancel_after is not None:
                    self.to_cancel.put(order)
            elif order.job_id != job_id:
                self.problems.append(f"key {order.key} was accepted as job {order.job_id} and as {job_id}")

    def note(self, channel: str, status: str, seconds: float | None = None) -> None:
        with self.lock:
            self.statuses[f"{channel} {status}"] += 1
            if seconds is not None:
                self.max_latency[status] = max(self.max_latency.get(status, 0.0), seconds)

    def count(self, what: str, n: int = 1) -> None:
        with self.lock:
            self.counts[what] += n

    def problem(self, text: str) -> None:
        with self.lock:
            self.problems.append(text)

    def keyed_sample(self, rng: random.Random) -> Order | None:
        with self.lock:
            return rng.choice(self.keyed) if self.keyed else None


@dataclass
class _Send:
    order: Order
    repeat: bool = False


class Load:
    """Submits orders at `rate` per second until stop_submitting(); cancels and replays until stop()."""

    def __init__(self, stack: Stack, rate: float, rng: random.Random) -> None:
        self.stack, self.rate, self.rng = stack, rate, rng
        self.subs = Submissions()
        self._channels: dict[str, queue.Queue[_Send]] = {name: queue.Queue() for name in CHANNELS}
        self._retries: list[tuple[float, int, _Send, str]] = []  # heap: (due, seq, send, channel)
        self._cancels: list[tuple[float, int, Order]] = []
        self._seq = 0
        self._heap_lock = threading.Lock()
        self._submitting = threading.Event()
        self._running = threading.Event()
        self._threads: list[threading.Thread] = []
        self._in_flight = 0  # sends taken off a channel queue and not answered yet

    # ---- control -------------------------------------------------------------------------
    def start(self) -> None:
        self._submitting.set()
        self._running.set()
        targets = [("dispatch", self._dispatch_loop)]
        targets += [(f"cancel-{i}", self._cancel_loop) for i in range(CANCEL_THREADS)]
        targets += [("replay", self._replay_loop), ("http-batch", lambda: self._batch_loop("http-batch"))]
        targets += [("python", lambda: self._batch_loop("python"))]
        targets += [(f"http-{i}", self._http_loop) for i in range(HTTP_THREADS)]
        for name, target in targets:
            thread = threading.Thread(target=self._guarded, args=(name, target), name=f"chaos-load-{name}")
            thread.daemon = True
            thread.start()
            self._threads.append(thread)

    def _guarded(self, name: str, target: Callable[[], None]) -> None:
        """A bug in the harness itself is reported as a problem, and its loop goes on."""
        while self._running.is_set():
            try:
                target()
            except Exception as exc:
                self.subs.problem(f"load thread {name}: {''.join(traceback.format_exception(exc))[-1500:]}")
                time.sleep(1.0)

    def stop_submitting(self) -> None:
        """No new orders from now on; retries, cancels and replays go on."""
        self._submitting.clear()

    def backlog(self) -> int:
        """Orders waiting for a channel thread."""
        return sum(q.qsize() for q in self._channels.values())

    def settled(self) -> bool:
        """Nothing left to send, retry or cancel."""
        with self._heap_lock:
            pending = bool(self._retries or self._cancels) or self._in_flight > 0
            pending = pending or not self.subs.to_cancel.empty()
        return not pending and not self.backlog()

    def stop(self) -> None:
        self._running.clear()
        for thread in self._threads:
            thread.join(timeout=60)

    # ---- orders --------------------------------------------------------------------------
    def new_order(self) -> Order:
        order = self.rng.choices(MIX, weights=[k.weight for k in MIX])[0].order(self.rng)
        if self.rng.random() < KEYED_SHARE:
            order.options["idempotencyKey"] = f"chaos-{uuid.uuid4().hex}"
        return order

    def _channel(self) -> str:
        shares = dict(CHANNELS)
        shares["http"] = min(shares["http"], HTTP_SINGLES_PER_SECOND / self.rate)
        return self.rng.choices(list(shares), weights=list(shares.values()))[0]

    def submit(self, send: _Send, channel: str | None = None) -> None:
        self._channels[channel or self._channel()].put(send)

    def _dispatch_loop(self) -> None:
        """Turns the rate into orders (a steady trickle, not bursts) and re-sends due retries."""
        owed, last = 0.0, time.monotonic()
        while self._running.is_set():
            time.sleep(0.02)
            now = time.monotonic()
            owed += (now - last) * self.rate if self._submitting.is_set() else 0.0
            last = now
            while owed >= 1:
                owed -= 1
                self._dispatch_one()
            with self._heap_lock:
                due = []
                while self._retries and self._retries[0][0] <= now:
                    due.append(heapq.heappop(self._retries))
            for _, _, send, channel in due:
                self.submit(send, channel)

    def _dispatch_one(self) -> None:
        if self.rng.random() < REPEAT_SHARE and (old := self.subs.keyed_sample(self.rng)) is not None:
            self.submit(_Send(old, repeat=True))
            return
        order = self.new_order()
        self.subs.count(f"submitted {order.kind}")
        self.subs.count("submitted")
        if order.key is not None and self.rng.random() < TWIN_SHARE:
            self.subs.count(TWICE)  # two processes race to insert one key
            self.submit(_Send(order), "http")
            self.submit(_Send(order), "python")
        else:
            self.submit(_Send(order))

    def _retry(self, send: _Send, channel: str) -> None:
        with self._heap_lock:
            self._seq += 1
            heapq.heappush(self._retries, (time.monotonic() + RETRY_PAUSE_SECONDS, self._seq, send, channel))

    # ---- channels ------------------------------------------------------------------------
    def _take(self, channel: str, most: int) -> list[_Send]:
        try:
            first = self._channels[channel].get(timeout=0.1)
        except queue.Empty:
            return []
        sends = [first]
        while len(sends) < most:
            try:
                sends.append(self._channels[channel].get_nowait())
            except queue.Empty:
                break
        with self._heap_lock:
            self._in_flight += len(sends)
        return sends

    def _done(self, n: int) -> None:
        with self._heap_lock:
            self._in_flight -= n

    def _failed(self, sends: list[_Send], channel: str) -> None:
        """No acknowledgement: a keyed order is sent again, an unkeyed one is given up."""
        for send in sends:
            if send.repeat:
                continue
            if send.order.key is not None:
                self._retry(send, channel)
            elif send.order.job_id is None:
                self.subs.count(GAVE_UP)

    def _answered(self, channel: str, reply_status: int, seconds: float) -> bool:
        """Notes an HTTP answer; True for 2xx. 503 is expected during outages; others are bugs."""
        self.subs.note(channel, str(reply_status), seconds)
        if reply_status >= 500 and reply_status != 503:
            self.subs.problem(f"{channel}: HTTP {reply_status}")
        return 200 <= reply_status < 300

    def _http_loop(self) -> None:
        api = self.stack.api()
        while self._running.is_set():
            for send in self._take("http", 1):
                try:
                    reply = api.call("POST", "/jobs", send.order.http_body())
                except ApiDown as exc:
                    self.subs.note("http", "no answer")
                    self.subs.count(f"no answer: {str(exc)[:60]}")
                    self._failed([send], "http")
                else:
                    if self._answered("http", reply.status, reply.seconds):
                        self.subs.accepted(send.order, reply.body["id"], send.repeat)
                    else:
                        self._unaccepted([send], "http", reply.status, reply.body)
                self._done(1)

    def _batch_loop(self, channel: str) -> None:
        api = self.stack.api()
        while self._running.is_set():
            sends = self._take(channel, BATCH_MAX)
            if not sends:
                continue
            if channel == "python":
                self._python_batch(sends)
            else:
                self._http_batch(api, sends)
            self._done(len(sends))

    def _http_batch(self, api: Api, sends: list[_Send]) -> None:
        try:
            reply = api.call("POST", "/jobs/batch", {"jobs": [s.order.http_body() for s in sends]})
        except ApiDown:
            self.subs.note("http-batch", "no answer")
            self._failed(sends, "http-batch")
            return
        if not self._answered("http-batch", reply.status, reply.seconds):
            self._unaccepted(sends, "http-batch", reply.status, reply.body)
            return
        for send, item in zip(sends, reply.body["items"], strict=True):
            self.subs.accepted(send.order, item["id"], send.repeat)

    def _python_batch(self, sends: list[_Send]) -> None:
        assert self.stack.python is not None
        started = time.monotonic()
        answer = self.stack.python.enqueue([s.order.python_spec() for s in sends])
        if not answer["ok"]:
            self.subs.note("python", answer["error"].split(":")[0], time.monotonic() - started)
            self._failed(sends, "python")
            return
        self.subs.note("python", "ok", time.monotonic() - started)
        for send, (job_id, _created) in zip(sends, answer["jobs"], strict=True):
            self.subs.accepted(send.order, job_id, send.repeat)

    def _unaccepted(self, sends: list[_Send], channel: str, reply_status: int, body: Any) -> None:
        if reply_status == 503:
            self._failed(sends, channel)
        else:
            self.subs.problem(f"{channel}: HTTP {reply_status} {str(body)[:200]}")

    # ---- cancels and replays -------------------------------------------------------------
    def _cancel_loop(self) -> None:
        api = self.stack.api()
        while self._running.is_set():
            with self._heap_lock:
                while not self.subs.to_cancel.empty():
                    order = self.subs.to_cancel.get()
                    self._seq += 1
                    heapq.heappush(
                        self._cancels, (time.monotonic() + (order.cancel_after or 0), self._seq, order)
                    )
                ripe = bool(self._cancels) and self._cancels[0][0] <= time.monotonic()
                due = heapq.heappop(self._cancels)[2] if ripe else None
                self._in_flight += ripe
            if due is None:
                time.sleep(0.05)
                continue
            due.cancel = self._cancel(api, due)
            self.subs.count(f"cancel {due.kind}: {due.cancel}")
            self._done(1)

    def _cancel(self, api: Api, order: Order) -> str:
        """canceled (200), asked (202: it was running), too late (409), unknown (no answer in time)."""
        deadline = time.monotonic() + CANCEL_DEADLINE_SECONDS
        while time.monotonic() < deadline:
            try:
                reply = api.call("POST", f"/jobs/{order.job_id}/cancel", {})
            except ApiDown:
                reply = None
            if reply is not None and reply.status in (200, 202, 409):
                return {200: "canceled", 202: "asked", 409: "too late"}[reply.status]
            if reply is not None and reply.status != 503:
                self.subs.problem(f"cancel: HTTP {reply.status} {str(reply.body)[:200]}")
                return "unknown"
            time.sleep(RETRY_PAUSE_SECONDS)
        return "unknown"

    def _replay_loop(self) -> None:
        """An operator replaying the dead letters of the type that fails until replayed."""
        api = self.stack.api()
        while self._running.is_set():
            time.sleep(1.0)
            try:
                reply = api.call("POST", "/dlq/replay", {"jobType": "chaos.flaky"})
            except ApiDown:
                continue
            if reply.status == 200:
                self.subs.count("replayed from the DLQ", reply.body["replayed"])
            elif reply.status != 503:
                self.subs.problem(f"replay: HTTP {reply.status} {str(reply.body)[:200]}")
