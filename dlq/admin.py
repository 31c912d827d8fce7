"""The dead-letter queue in the Django admin, read-only for now."""

from __future__ import annotations

from django.contrib import admin

from dlq.models import DeadLetter
from jobs.admin import ReadOnlyAdmin


@admin.register(DeadLetter)
class DeadLetterAdmin(ReadOnlyAdmin):
    list_display = ["job_id", "job_type", "queue", "reason", "attempts", "failed_at"]
    list_filter = ["queue", "reason"]
    search_fields = ["=job__id", "job_type"]
    ordering = ["-failed_at"]
