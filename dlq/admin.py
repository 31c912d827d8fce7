"""The dead-letter queue in the ops UI: list, bulk replay and delete, replay one from its page.

Replay and delete go through dlq.services, the same as the API.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html

from dlq import services
from dlq.models import DeadLetter
from jobs.admin import CappedCountPaginator, ReadOnlyAdmin, ReasonActionForm, actor, pretty_json, report
from jobs.errors import TaskForgeError


@admin.register(DeadLetter)
class DeadLetterAdmin(ReadOnlyAdmin):
    list_display = ["job_link", "job_type", "queue", "reason", "short_error", "attempts", "failed_at"]
    list_filter = ["queue", "job_type"]
    search_fields = ["=job__id"]
    ordering = ["-failed_at"]
    show_full_result_count = False
    paginator = CappedCountPaginator
    action_form = ReasonActionForm
    actions = ["replay", "delete"]
    fields = ["job_link", "job_type", "queue", "reason", "last_error", "attempts", "failed_at"]
    fields += ["payload_pretty"]
    readonly_fields = ["job_link", "payload_pretty"]

    def has_replay_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("dlq.change_deadletter")

    def has_remove_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("dlq.delete_deadletter")

    @admin.display(description="job", ordering="job_id")
    def job_link(self, letter: DeadLetter) -> str:
        return format_html(
            '<a href="{}">{}</a>', reverse("admin:jobs_job_change", args=[letter.job_id]), letter.job_id
        )

    @admin.display(description="last error")
    def short_error(self, letter: DeadLetter) -> str:
        error = letter.last_error or ""
        return error if len(error) <= 120 else error[:119] + "…"

    @admin.display(description="payload")
    def payload_pretty(self, letter: DeadLetter) -> str:
        return pretty_json(letter.payload)

    @admin.action(description="Replay selected dead letters", permissions=["replay"])
    def replay(self, request: HttpRequest, queryset: QuerySet) -> None:
        ids = list(queryset.values_list("job_id", flat=True))
        report(request, self, "Replayed", ids, services.replay_dead_letters(ids=ids, actor=actor(request)))

    @admin.action(description="Delete selected jobs for good", permissions=["remove"])
    def delete(self, request: HttpRequest, queryset: QuerySet) -> None:
        ids = list(queryset.values_list("job_id", flat=True))
        deleted = services.delete_dead_letters(
            ids=ids, actor=actor(request), reason=request.POST.get("reason") or None
        )
        report(request, self, "Deleted", ids, deleted)

    def get_urls(self) -> list:
        return [
            path(
                "<uuid:job_id>/replay/",
                self.admin_site.admin_view(self.replay_view),
                name="dlq_deadletter_replay",
            ),
            *super().get_urls(),
        ]

    def replay_view(self, request: HttpRequest, job_id: uuid.UUID) -> HttpResponse:
        """The detail page's Replay button."""
        if request.method != "POST" or not self.has_replay_permission(request):
            raise PermissionDenied
        try:
            services.replay_dead_letter(job_id, actor=actor(request))
        except TaskForgeError as exc:
            messages.error(request, str(exc))
            return HttpResponseRedirect(reverse("admin:dlq_deadletter_changelist"))
        messages.success(request, f"Replayed {job_id}: it is queued again.")
        return HttpResponseRedirect(reverse("admin:jobs_job_change", args=[job_id]))

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict | None = None
    ) -> Any:
        extra = {"can_replay": self.has_replay_permission(request), **(extra_context or {})}
        return super().change_view(request, object_id, form_url, extra)
