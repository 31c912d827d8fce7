"""DeadLetter: one row per job currently in the DLQ, kept in Postgres so it is never lost."""

from __future__ import annotations

from django.db import models
from django.db.models.functions import Now

from jobs.models import Job


class DeadLetter(models.Model):
    """Why a job was dead-lettered; replay deletes the row, the history stays in job_events."""

    job = models.OneToOneField(Job, on_delete=models.CASCADE, primary_key=True, related_name="dead_letter")
    queue = models.CharField(max_length=100)
    job_type = models.CharField(max_length=200)
    payload = models.JSONField(default=dict)
    reason = models.CharField(max_length=200)
    last_error = models.TextField(null=True, blank=True)
    attempts = models.IntegerField(default=0)
    failed_at = models.DateTimeField(db_default=Now())
    created_at = models.DateTimeField(db_default=Now())
    updated_at = models.DateTimeField(db_default=Now())

    class Meta:
        db_table = "dead_letters"
        indexes = [
            models.Index(fields=["queue", "failed_at"], name="dead_letters_queue_idx"),
            models.Index(fields=["job_type", "failed_at"], name="dead_letters_type_idx"),
            models.Index(fields=["failed_at"], name="dead_letters_failed_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.job_type} {self.job_id}: {self.reason}"
