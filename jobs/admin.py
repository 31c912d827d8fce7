"""A read-only view of jobs in the Django admin (the full ops UI builds on this).

Jobs change state only through jobs.services, never by editing a row here.
"""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from jobs.models import Job, JobEvent


class ReadOnlyAdmin(admin.ModelAdmin):
    """No add, change or delete: the state machine is not bypassed from the admin."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Job)
class JobAdmin(ReadOnlyAdmin):
    list_display = ["id", "job_type", "queue", "state", "attempt_count", "max_attempts", "created_at"]
    list_filter = ["state", "queue"]
    search_fields = ["=id", "=idempotency_key", "job_type"]
    ordering = ["-created_at"]
    show_full_result_count = False


@admin.register(JobEvent)
class JobEventAdmin(ReadOnlyAdmin):
    list_display = ["id", "job_id", "type", "attempt", "worker_id", "at"]
    list_filter = ["type"]
    search_fields = ["=job__id"]
    ordering = ["-id"]
    show_full_result_count = False
