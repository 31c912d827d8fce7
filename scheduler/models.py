"""Periodic schedules: a cron expression that enqueues a job at each tick (scheduler/schedules.py)."""

from __future__ import annotations

import uuid

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q
from django.db.models.functions import Now

from jobs.models import LIMITS
from scheduler.cron import MAX_EXPRESSION_LENGTH, Cron, CronError, check_timezone

MAX_CATCH_UP = 1000
MAX_JITTER_MS = 3600 * 1000


class MisfirePolicy(models.TextChoices):
    """What a scheduler does with ticks it reaches too late (no scheduler ran at the time)."""

    SKIP = "skip", "skip: fire none of the missed ticks"
    RUN_ONCE = "run_once", "run once: fire the latest missed tick"
    CATCH_UP = "catch_up", "catch up: fire the missed ticks, oldest first, up to the catch-up limit"


def validate_cron(value: str) -> None:
    """The expression alone (its timezone is validated by its own field)."""
    try:
        Cron.parse(value)
    except CronError as exc:
        raise ValidationError(str(exc), code="invalid") from None


def validate_timezone(value: str) -> None:
    try:
        check_timezone(value)
    except CronError as exc:
        raise ValidationError(str(exc), code="invalid") from None


def _bounds(low: float, high: float) -> list:
    return [MinValueValidator(low), MaxValueValidator(high)]


NAME_HELP = "1-200 characters of A-Z a-z 0-9 _ . : -; unique. Part of each fired job's idempotency key."
validate_name = RegexValidator(r"\A[A-Za-z0-9_.:-]{1,200}\Z", NAME_HELP)
QUEUE_HELP = "1-100 characters of A-Z a-z 0-9 _ . : -; null: the job type's queue, else QUEUE_NAME."
validate_queue = RegexValidator(r"\A[A-Za-z0-9_.:-]{1,100}\Z", QUEUE_HELP)


class PeriodicSchedule(models.Model):
    """A job to enqueue at every tick of `cron`; the scheduler fires each tick once."""

    # What a code declaration (scheduler/declarations.py) owns: re-applied at each scheduler
    # start, so the API and the admin refuse to change them on a declared schedule.
    CODE_OWNED = (
        "name", "cron", "timezone", "job_type", "payload", "queue", "priority",
        "misfire_policy", "catch_up_limit", "jitter_ms",
    )  # fmt: skip

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200, unique=True, validators=[validate_name], help_text=NAME_HELP)
    cron = models.CharField(max_length=MAX_EXPRESSION_LENGTH, validators=[validate_cron])
    timezone = models.CharField(max_length=64, default="UTC", validators=[validate_timezone])
    job_type = models.CharField(max_length=200)
    payload = models.JSONField(default=dict, blank=True)
    queue = models.CharField(
        max_length=100, null=True, blank=True, validators=[validate_queue], help_text=QUEUE_HELP
    )
    priority = models.SmallIntegerField(default=0, validators=_bounds(*LIMITS["priority"]))
    enabled = models.BooleanField(default=True)
    misfire_policy = models.CharField(
        max_length=16, choices=MisfirePolicy.choices, default=MisfirePolicy.RUN_ONCE
    )
    catch_up_limit = models.IntegerField(default=10, validators=_bounds(1, MAX_CATCH_UP))
    jitter_ms = models.IntegerField(default=0, validators=_bounds(0, MAX_JITTER_MS))
    declared = models.BooleanField(default=False, editable=False)
    next_fire_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_fired_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_job_id = models.UUIDField(null=True, blank=True, editable=False)
    last_error = models.TextField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(db_default=Now(), editable=False)
    updated_at = models.DateTimeField(db_default=Now(), editable=False)

    class Meta:
        db_table = "periodic_schedules"
        constraints = [
            models.CheckConstraint(
                condition=Q(misfire_policy__in=MisfirePolicy.values), name="periodic_schedules_misfire_valid"
            ),
            models.CheckConstraint(
                condition=Q(priority__gte=LIMITS["priority"][0], priority__lte=LIMITS["priority"][1]),
                name="periodic_schedules_priority_range",
            ),
            models.CheckConstraint(
                condition=Q(catch_up_limit__gte=1, catch_up_limit__lte=MAX_CATCH_UP),
                name="periodic_schedules_catch_up_limit_range",
            ),
            models.CheckConstraint(
                condition=Q(jitter_ms__gte=0, jitter_ms__lte=MAX_JITTER_MS),
                name="periodic_schedules_jitter_range",
            ),
            # The due query reads only enabled rows; a disabled one has no next tick.
            models.CheckConstraint(
                condition=Q(enabled=True, next_fire_at__isnull=False)
                | Q(enabled=False, next_fire_at__isnull=True),
                name="periodic_schedules_next_fire_iff_enabled",
            ),
        ]
        indexes = [
            models.Index(
                fields=["next_fire_at"], condition=Q(enabled=True), name="periodic_schedules_due_idx"
            )
        ]

    def __str__(self) -> str:
        return self.name
