"""OpenTelemetry tracing: the per-process provider, W3C context on jobs, and job spans.

Off unless TRACING_ENABLED: every process (gunicorn worker, runserver, runworker,
runscheduler) calls `setup_tracing` for itself only when it is on. Until then the helpers
below do nothing and cost nothing: no provider, no spans, nothing printed.

The chain: the API request span (DjangoInstrumentor, which also honours an incoming
`traceparent` header) -> `enqueue_jobs` stores the current span's `traceparent` on each job ->
the scheduler's `job.promote` and the worker's `job.execute` spans are its children, so a
job's whole life is one trace whichever hosts it crossed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

# Probes and scrapes would otherwise add a span every few seconds per API instance.
UNTRACED_URLS = "/metrics$,/healthz$,/readyz$"

_enabled = False


def enabled() -> bool:
    """True once this process set up tracing."""
    return _enabled


def _json_line(span: ReadableSpan) -> str:
    """ConsoleSpanExporter's default is indented JSON over many lines; log shippers want one."""
    return span.to_json(indent=None) + "\n"


def setup_tracing(service_name: str, *, exporter: str) -> None:
    """Installs this process's tracer provider; a second call in the same process does nothing.

    With exporter "stdout" spans are printed as JSON lines; with "none" they are still created
    (trace ids reach the logs and the jobs) but exported nowhere. The BatchSpanProcessor's
    thread must start in the process that uses it, so gunicorn calls this in post_fork.
    """
    global _enabled
    if _enabled:
        return
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    if exporter == "stdout":
        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter(formatter=_json_line)))
    trace.set_tracer_provider(provider)
    _enabled = True


def instrument_django() -> None:
    """Adds the request-span middleware; must run before the WSGI app loads its middleware."""
    from opentelemetry.instrumentation.django import DjangoInstrumentor

    instrumentor = DjangoInstrumentor()
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument(excluded_urls=UNTRACED_URLS)


def current_traceparent() -> str:
    """The W3C traceparent of the active span, or "" (tracing off, or no span)."""
    if not enabled():
        return ""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get("traceparent", "")


def _job_attributes(job_id: Any, queue: str, job_type: str, attempt: int) -> dict[str, Any]:
    return {"job_id": str(job_id), "queue": queue, "job.type": job_type, "attempt": attempt}


def _parent(traceparent: str) -> Any:
    return propagate.extract({"traceparent": traceparent}) if traceparent else None


@contextlib.contextmanager
def job_span(
    name: str, *, traceparent: str, job_id: Any, queue: str, job_type: str, attempt: int
) -> Iterator[trace.Span]:
    """A CONSUMER span, child of the job's stored traceparent, current while the block runs.

    Yields a non-recording span when tracing is off, so callers need no `if`.
    """
    if not enabled():
        yield trace.INVALID_SPAN
        return
    with trace.get_tracer("taskforge").start_as_current_span(
        name,
        context=_parent(traceparent),
        kind=SpanKind.CONSUMER,
        attributes=_job_attributes(job_id, queue, job_type, attempt),
        record_exception=False,  # the caller records the handler's exception (it never escapes)
        set_status_on_exception=False,
    ) as span:
        yield span


def record_failure(span: trace.Span, error: BaseException) -> None:
    """Marks a job span failed with the exception (type, message, stack trace) as an event."""
    span.record_exception(error)
    span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))


def record_job_span(
    name: str,
    *,
    traceparent: str,
    job_id: Any,
    queue: str,
    job_type: str,
    attempt: int,
    start_time_ns: int | None = None,
) -> None:
    """A finished CONSUMER span for a step done in bulk (e.g. promotion); only for traced jobs."""
    if not enabled() or not traceparent:
        return
    span = trace.get_tracer("taskforge").start_span(
        name,
        context=_parent(traceparent),
        kind=SpanKind.CONSUMER,
        attributes=_job_attributes(job_id, queue, job_type, attempt),
        start_time=start_time_ns,
    )
    span.end()
