"""Job and JobEvent: the durable truth of every job (Redis only carries ids)."""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q
from django.db.models.functions import Now

from jobs.states import FINISHED_STATES, JobState

MAX_DELAY_MS = 7 * 24 * 3600 * 1000  # one week: fits the int columns and any sane policy
MAX_ATTEMPTS = 1000
MAX_BACKOFF = 100.0
MAX_RUN_DELAY_MS = 366 * 24 * 3600 * 1000  # how far ahead `delay` may schedule a job
MAX_RATE_PER_SEC = 1_000_000.0
MAX_QUEUE_CONCURRENCY = 100_000

# Inclusive ranges of a job's numeric options: the API, the Python API and the CHECK
# constraints below all use this one table.
LIMITS: dict[str, tuple[float, float]] = {
    "priority": (-100, 100),
    "max_attempts": (1, MAX_ATTEMPTS),
    "initial_delay_ms": (0, MAX_DELAY_MS),
    "backoff": (1.0, MAX_BACKOFF),
    "max_delay_ms": (0, MAX_DELAY_MS),
    "timeout_ms": (1, MAX_DELAY_MS),
    "delay_ms": (0, MAX_RUN_DELAY_MS),
}


def _range(field: str) -> Q:
    low, high = LIMITS[field]
    return Q(**{f"{field}__gte": low, f"{field}__lte": high})


def _in(field: str, values: object) -> Q:
    return Q(**{f"{field}__in": sorted(str(v) for v in values)})  # type: ignore[attr-defined]


class Job(models.Model):
    """One unit of work; every write goes through jobs.services with a guarded UPDATE."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    queue = models.CharField(max_length=100)
    job_type = models.CharField(max_length=200)
    payload = models.JSONField(default=dict)
    state = models.CharField(max_length=16, choices=JobState.choices, default=JobState.PENDING)
    priority = models.SmallIntegerField(default=0)
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)
    attempt_count = models.IntegerField(default=0)
    max_attempts = models.IntegerField(default=5)
    initial_delay_ms = models.IntegerField(default=1000)
    backoff = models.FloatField(default=2.0)
    max_delay_ms = models.IntegerField(default=60_000)
    jitter = models.BooleanField(default=False)
    timeout_ms = models.IntegerField(null=True, blank=True)
    run_at = models.DateTimeField(null=True, blank=True)
    next_run_at = models.DateTimeField(null=True, blank=True)
    queued_at = models.DateTimeField(null=True, blank=True)
    lease_owner = models.CharField(max_length=200, null=True, blank=True)
    lease_token = models.UUIDField(null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    cancel_requested = models.BooleanField(default=False)
    last_error = models.TextField(null=True, blank=True)
    result = models.JSONField(null=True, blank=True)
    traceparent = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField(db_default=Now())
    updated_at = models.DateTimeField(db_default=Now())
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "jobs"
        constraints = [
            models.UniqueConstraint(
                fields=["queue", "idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="jobs_idempotency_key_per_queue",
            ),
            models.CheckConstraint(condition=_in("state", JobState), name="jobs_state_valid"),
            models.CheckConstraint(condition=_range("priority"), name="jobs_priority_range"),
            models.CheckConstraint(condition=_range("max_attempts"), name="jobs_max_attempts_range"),
            models.CheckConstraint(condition=Q(attempt_count__gte=0), name="jobs_attempt_count_range"),
            models.CheckConstraint(
                condition=_range("initial_delay_ms") & _range("max_delay_ms"), name="jobs_delay_range"
            ),
            models.CheckConstraint(condition=_range("backoff"), name="jobs_backoff_range"),
            models.CheckConstraint(
                condition=Q(timeout_ms__isnull=True) | _range("timeout_ms"), name="jobs_timeout_range"
            ),
            # A lease exists exactly while the job runs: fencing depends on it.
            models.CheckConstraint(
                condition=(
                    Q(state=JobState.RUNNING)
                    & Q(lease_token__isnull=False, lease_owner__isnull=False, lease_expires_at__isnull=False)
                )
                | (~Q(state=JobState.RUNNING) & Q(lease_token__isnull=True)),
                name="jobs_lease_iff_running",
            ),
            models.CheckConstraint(
                condition=~_in("state", {JobState.PENDING, JobState.RETRYING}) | Q(next_run_at__isnull=False),
                name="jobs_waiting_has_next_run_at",
            ),
            models.CheckConstraint(
                condition=(_in("state", FINISHED_STATES) & Q(finished_at__isnull=False))
                | (~_in("state", FINISHED_STATES) & Q(finished_at__isnull=True)),
                name="jobs_finished_at_iff_finished",
            ),
        ]
        indexes = [
            # promotion of due jobs (scheduler)
            models.Index(
                fields=["next_run_at"],
                condition=_in("state", {JobState.PENDING, JobState.RETRYING}),
                name="jobs_due_idx",
            ),
            # lease expiry (scheduler). Not `WHERE state = 'RUNNING'`: with that predicate the
            # settle, heartbeat and release statements (`state = 'RUNNING'` joined to an unnest)
            # read every RUNNING job through this index whenever the statistics say few run,
            # so each batch cost grew with the jobs running cluster-wide. Only RUNNING jobs
            # have a lease expiry (every move out of RUNNING clears it).
            models.Index(
                fields=["lease_expires_at"],
                condition=Q(lease_expires_at__isnull=False),
                name="jobs_lease_expiry_idx",
            ),
            # reconciliation sweep over QUEUED jobs missing from Redis
            models.Index(
                fields=["queued_at", "id"], condition=Q(state=JobState.QUEUED), name="jobs_queued_idx"
            ),
            # retention pruning
            models.Index(
                fields=["finished_at"],
                condition=_in("state", {JobState.SUCCEEDED, JobState.CANCELED}),
                name="jobs_finished_idx",
            ),
            # live counts by queue and state, and the oldest QUEUED job per queue (GET /stats)
            models.Index(
                fields=["queue", "state", "queued_at"],
                condition=_in(
                    "state", {JobState.PENDING, JobState.QUEUED, JobState.RUNNING, JobState.RETRYING}
                ),
                name="jobs_active_idx",
            ),
            # listings
            models.Index(fields=["queue", "state", "created_at"], name="jobs_queue_state_created_idx"),
            models.Index(fields=["created_at"], name="jobs_created_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.job_type} {self.id} ({self.state})"


class JobEvent(models.Model):
    """Append-only history: one row per transition, written in the transition's transaction."""

    id = models.BigAutoField(primary_key=True)
    # No database FK: events are only written by the statements that move their job (so the job
    # exists), and a deferred FK check would cost a lookup per event on the hot path.
    # No index of its own either: job_events_job_idx (job, id) serves lookups by job.
    job = models.ForeignKey(
        Job, on_delete=models.CASCADE, related_name="events", db_constraint=False, db_index=False
    )
    type = models.CharField(max_length=32)
    at = models.DateTimeField(db_default=Now())
    attempt = models.IntegerField(default=0)
    worker_id = models.CharField(max_length=200, null=True, blank=True)
    details = models.JSONField(default=dict)

    class Meta:
        db_table = "job_events"
        indexes = [models.Index(fields=["job", "id"], name="job_events_job_idx")]

    def __str__(self) -> str:
        return f"{self.type} {self.job_id}"


class QueueSettings(models.Model):
    """Per-queue operator settings; Postgres is their truth, Redis mirrors what workers need."""

    name = models.CharField(max_length=100, primary_key=True)
    paused = models.BooleanField(default=False)
    # None: RATE_LIMIT_PER_SEC applies; 0: no limit. Cluster-wide starts per second.
    rate_limit_per_sec = models.FloatField(null=True, blank=True)
    # None: no limit. Cluster-wide cap on this queue's running jobs.
    concurrency_limit = models.IntegerField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "queue_settings"
        verbose_name_plural = "queue settings"
        constraints = [
            models.CheckConstraint(
                condition=Q(rate_limit_per_sec__isnull=True)
                | Q(rate_limit_per_sec__gte=0, rate_limit_per_sec__lte=MAX_RATE_PER_SEC),
                name="queue_settings_rate_range",
            ),
            models.CheckConstraint(
                condition=Q(concurrency_limit__isnull=True)
                | Q(concurrency_limit__gte=1, concurrency_limit__lte=MAX_QUEUE_CONCURRENCY),
                name="queue_settings_concurrency_range",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name}{' (paused)' if self.paused else ''}"


class AuditEntry(models.Model):
    """Who did what to which job or queue, when and why: one row per target of an operator action.

    Written in the same transaction as the change (job actions in their jobs/sql.py statement,
    queue settings and DLQ deletes in their service), so the trail never misses or invents one.
    """

    id = models.BigAutoField(primary_key=True)
    at = models.DateTimeField(db_default=Now())
    actor = models.CharField(max_length=150, null=True, blank=True)  # None: API auth off
    action = models.CharField(max_length=32)
    target_type = models.CharField(max_length=16)  # "job" or "queue"
    target_id = models.CharField(max_length=100)
    reason = models.TextField(null=True, blank=True)
    details = models.JSONField(default=dict)

    class Meta:
        db_table = "audit_entries"
        verbose_name_plural = "audit entries"
        indexes = [
            models.Index(fields=["target_type", "target_id", "id"], name="audit_entries_target_idx"),
            models.Index(fields=["at"], name="audit_entries_at_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.actor or 'anonymous'} {self.action} {self.target_type} {self.target_id}"
