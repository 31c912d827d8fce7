"""Periodic schedules in the Django admin: list, edit, delete and "Run now", all through
scheduler.schedules, the functions the API calls.

Who may do what follows the API's roles (taskforge_site/permissions.py): viewers see the
schedules, operators also change them.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from jobs.errors import TaskForgeError
from jobs.roles import ACT_PERMISSION, READ_PERMISSION
from scheduler import schedules
from scheduler.models import PeriodicSchedule


class ScheduleForm(forms.ModelForm):
    """Shows the service's verdict (job type, payload) as form errors, before anything is saved."""

    class Meta:
        model = PeriodicSchedule
        fields = [*PeriodicSchedule.CODE_OWNED, "enabled"]

    def clean_payload(self) -> Any:
        """An empty payload box means {}, as an absent payload does in the API."""
        payload = self.cleaned_data["payload"]
        return {} if payload is None else payload

    def _post_clean(self) -> None:
        super()._post_clean()
        if self.errors:
            return
        try:
            schedules.validate_schedule(self.instance)
        except TaskForgeError as exc:
            fields = [name for name in exc.details if name in self.fields]
            for name in fields or [None]:
                self.add_error(name, exc.message)


@admin.register(PeriodicSchedule)
class PeriodicScheduleAdmin(admin.ModelAdmin):
    form = ScheduleForm
    list_display = [
        "name", "cron", "timezone", "job_type", "queue", "enabled", "last_fired_at", "next_fire_at",
        "declared",
    ]  # fmt: skip
    list_filter = ["enabled", "declared", "misfire_policy"]
    search_fields = ["name", "job_type"]
    ordering = ["name"]
    actions = ["run_now"]
    readonly_fields = ["declared", "next_fire_at", "last_fired_at", "last_job_id", "last_error", "created_at"]

    def get_readonly_fields(self, request: HttpRequest, obj: PeriodicSchedule | None = None) -> list[str]:
        """A declared schedule's code-owned fields come from its declaration, at each scheduler start."""
        if obj is not None and obj.declared:
            return [*PeriodicSchedule.CODE_OWNED, *self.readonly_fields]
        return list(self.readonly_fields)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(READ_PERMISSION)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm(READ_PERMISSION)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(ACT_PERMISSION)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm(ACT_PERMISSION)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm(ACT_PERMISSION) and not (obj is not None and obj.declared)

    def save_model(
        self, request: HttpRequest, obj: PeriodicSchedule, form: forms.ModelForm, change: bool
    ) -> None:
        if change:
            changes = {name: form.cleaned_data[name] for name in form.changed_data}
            saved = schedules.update_schedule(obj.id, changes)
            obj.next_fire_at, obj.updated_at = saved.next_fire_at, saved.updated_at
        else:
            schedules.create_schedule(obj)

    def delete_model(self, request: HttpRequest, obj: PeriodicSchedule) -> None:
        schedules.delete_schedule(obj.id)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[PeriodicSchedule]) -> None:
        for schedule_id in queryset.filter(declared=False).values_list("id", flat=True):
            schedules.delete_schedule(schedule_id)
        kept = list(queryset.filter(declared=True).values_list("name", flat=True))
        if kept:
            self.message_user(request, f"Kept, as declared in code: {', '.join(kept)}.", messages.WARNING)

    @admin.action(description="Run now: enqueue one job of each selected schedule", permissions=["change"])
    def run_now(self, request: HttpRequest, queryset: QuerySet[PeriodicSchedule]) -> None:
        for schedule in queryset.order_by("name"):
            try:
                job = schedules.run_schedule_now(schedule.id, actor=request.user.get_username())
            except TaskForgeError as exc:
                self.message_user(request, f"Schedule {schedule.name}: {exc.message}", messages.ERROR)
            else:
                self.message_user(
                    request, f"Schedule {schedule.name}: enqueued job {job.id}.", messages.SUCCESS
                )
