"""The ops UI: jobs, their events and the audit trail in the Django admin, plus the dashboard.

Nothing here writes a row itself: every action calls the same service as the API (same guards,
same events, same audit entries). Jobs cannot be edited; "clone and enqueue" is offered instead.
Everything shown from job data goes through format_html or the template engine, so it is escaped.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join
from django.views.decorators.http import require_POST

from dlq import services as dlq_services
from jobs import selectors, services
from jobs.errors import TaskForgeError
from jobs.models import AuditEntry, Job, JobEvent
from jobs.states import JobState

COUNT_CAP = 10_000
TIMELINE_EVENTS = 200
STATE_COLOURS = {
    JobState.PENDING: "#6c757d",
    JobState.QUEUED: "#0d6efd",
    JobState.RUNNING: "#6f42c1",
    JobState.RETRYING: "#fd7e14",
    JobState.SUCCEEDED: "#198754",
    JobState.DLQ: "#dc3545",
    JobState.CANCELED: "#495057",
}


class CappedCountPaginator(Paginator):
    """Counts at most COUNT_CAP rows; beyond that an unfiltered list shows the planner's estimate.

    count(*) over a million jobs on every page load is what makes big admins slow.
    """

    @cached_property
    def count(self) -> int:
        capped = self.object_list.order_by()[: COUNT_CAP + 1].count()
        if capped > COUNT_CAP and not self.object_list.query.where:
            return max(selectors.estimated_row_count(self.object_list.model), capped)
        return capped


class ReasonActionForm(ActionForm):
    """The action bar with a free-text reason, recorded in the events and the audit trail."""

    reason = forms.CharField(required=False, max_length=500, label="Reason")


def actor(request: HttpRequest) -> str:
    """Who acts, as the audit trail names them."""
    return request.user.get_username()


def pretty_json(value: Any) -> str:
    """Indented JSON in a <pre>, escaped."""
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False))


def state_badge(state: str) -> str:
    """A coloured label for a job state."""
    return format_html(
        '<span class="tf-state" style="background:{};color:#fff;padding:1px 6px;border-radius:8px">{}</span>',
        STATE_COLOURS.get(state, "#6c757d"),
        state,
    )


def report(
    request: HttpRequest, modeladmin: admin.ModelAdmin, verb: str, ids: Sequence[uuid.UUID], changed: Any
) -> None:
    """ "Retried 3 jobs; skipped 2 (1 SUCCEEDED, 1 RUNNING: not allowed from that state)."."""
    skipped = set(ids) - set(changed)
    message = f"{verb} {len(changed)} job{'s' if len(changed) != 1 else ''}"
    if skipped:
        states = Counter(Job.objects.filter(id__in=skipped).values_list("state", flat=True))
        gone = len(skipped) - sum(states.values())
        why = [f"{n} {state}" for state, n in sorted(states.items())] + ([f"{gone} gone"] if gone else [])
        message += f"; skipped {len(skipped)} ({', '.join(why)}: not allowed from that state)"
    modeladmin.message_user(request, message + ".", messages.WARNING if skipped else messages.SUCCESS)


class ReadOnlyAdmin(admin.ModelAdmin):
    """No add, change or delete: the state machine is not bypassed from the admin."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class QueueFilter(admin.SimpleListFilter):
    """Queues from the live counts (an index scan), not a DISTINCT over every job."""

    title = "queue"
    parameter_name = "queue"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(q, q) for q in sorted(selectors.queue_counts().by_queue)]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        return queryset.filter(queue=self.value()) if self.value() else queryset


class JobTypeFilter(admin.SimpleListFilter):
    """Job types seen among recent jobs (bounded), not a DISTINCT over every job."""

    title = "job type"
    parameter_name = "job_type"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(t, t) for t in selectors.recent_job_types()]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        return queryset.filter(job_type=self.value()) if self.value() else queryset


@admin.register(Job)
class JobAdmin(ReadOnlyAdmin):
    list_display = ["id", "job_type", "queue", "state_label", "attempts", "created_at", "duration"]
    list_filter = ["state", QueueFilter, JobTypeFilter, ("created_at", admin.DateFieldListFilter)]
    search_fields = ["=id", "=idempotency_key"]
    search_help_text = "A job id or an idempotency key."
    ordering = ["-created_at"]
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER  # facet counts are a count(*) per filter choice
    paginator = CappedCountPaginator
    action_form = ReasonActionForm
    actions = ["retry", "cancel", "dead_letter"]
    fieldsets = [
        (None, {"fields": ["id", "job_type", "queue", "state_label", "priority", "idempotency_key"]}),
        ("Data", {"fields": ["payload_pretty", "result_pretty", "last_error", "traceback"]}),
        (
            "Retry policy",
            {"fields": ["attempts", "initial_delay_ms", "backoff", "max_delay_ms", "jitter", "timeout_ms"]},
        ),
        ("Lease", {"fields": ["lease_owner", "lease_expires_at", "cancel_requested"]}),
        (
            "Times",
            {"fields": ["created_at", "run_at", "next_run_at", "queued_at", "started_at", "finished_at"]},
        ),
        ("History", {"fields": ["timeline", "audit_trail"]}),
    ]
    readonly_fields = [
        "state_label",
        "payload_pretty",
        "result_pretty",
        "traceback",
        "attempts",
        "timeline",
        "audit_trail",
    ]

    def has_act_permission(self, request: HttpRequest) -> bool:
        """Operators (jobs.change_job) act through services; nobody edits a job row."""
        return request.user.has_perm("jobs.change_job")

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str) -> Any:
        term = search_term.strip()
        return (queryset.filter(selectors.id_or_key(term)) if term else queryset), False

    @admin.display(description="state", ordering="state")
    def state_label(self, job: Job) -> str:
        return state_badge(job.state)

    @admin.display(description="attempts")
    def attempts(self, job: Job) -> str:
        return f"{job.attempt_count}/{job.max_attempts}"

    @admin.display(description="duration")
    def duration(self, job: Job) -> str:
        if job.started_at is None or job.finished_at is None:
            return "-"
        return f"{(job.finished_at - job.started_at).total_seconds():.3f} s"

    @admin.display(description="payload")
    def payload_pretty(self, job: Job) -> str:
        return pretty_json(job.payload)

    @admin.display(description="result")
    def result_pretty(self, job: Job) -> str:
        return pretty_json(job.result) if job.result is not None else "-"

    @admin.display(description="traceback of the last failure")
    def traceback(self, job: Job) -> str:
        failed = JobEvent.objects.filter(job=job, type="failed").order_by("-id").first()
        text = failed.details.get("traceback") if failed else None
        return format_html("<pre>{}</pre>", text) if text else "-"

    @admin.display(description="events")
    def timeline(self, job: Job) -> str:
        events = list(JobEvent.objects.filter(job=job).order_by("-id")[:TIMELINE_EVENTS])
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
            (
                (e.at, e.type, e.attempt, e.worker_id or "", json.dumps(e.details, sort_keys=True))
                for e in reversed(events)
            ),
        )
        more = reverse("admin:jobs_jobevent_changelist") + f"?q={job.id}"
        return format_html(
            '<table class="tf-timeline"><tr><th>at</th><th>event</th><th>attempt</th><th>worker</th>'
            '<th>details</th></tr>{}</table><a href="{}">all events of this job</a>',
            rows,
            more,
        )

    @admin.display(description="operator actions")
    def audit_trail(self, job: Job) -> str:
        return audit_table(AuditEntry.objects.filter(target_type="job", target_id=str(job.id)))

    def _bulk(
        self, request: HttpRequest, queryset: QuerySet, verb: str, apply: Callable[..., Any]
    ) -> list[uuid.UUID]:
        ids = list(queryset.values_list("id", flat=True))
        reason = request.POST.get("reason") or None
        changed = apply(ids=ids, actor=actor(request), reason=reason)
        report(request, self, verb, ids, changed)
        return changed

    @admin.action(description="Retry selected jobs", permissions=["act"])
    def retry(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._bulk(request, queryset, "Retried", services.retry_jobs)

    @admin.action(description="Cancel selected jobs", permissions=["act"])
    def cancel(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._bulk(request, queryset, "Canceled (running: asked to stop)", services.cancel_jobs)

    @admin.action(description="Move selected jobs to the DLQ", permissions=["act"])
    def dead_letter(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._bulk(request, queryset, "Dead-lettered", dlq_services.dead_letter_jobs)

    def get_urls(self) -> list:
        view = self.admin_site.admin_view
        return [
            path("dashboard/", view(self.dashboard_view), name="jobs_job_dashboard"),
            path("dashboard/body/", view(self.dashboard_body_view), name="jobs_job_dashboard_body"),
            path("dashboard/pause/", view(self.pause_view), name="jobs_job_pause"),
            path("<uuid:job_id>/clone/", view(self.clone_view), name="jobs_job_clone"),
            path("<uuid:job_id>/act/", view(self.act_view), name="jobs_job_act"),
            *super().get_urls(),
        ]

    def _dashboard_context(self, request: HttpRequest) -> dict[str, Any]:
        if not self.has_view_permission(request):
            raise PermissionDenied
        data = selectors.dashboard(worker_max_age_seconds=settings.TASKFORGE.lease_seconds)
        return {
            **self.admin_site.each_context(request),
            "title": "TaskForge dashboard",
            "data": data,
            "chart": throughput_chart(data["throughput"]),
            "can_pause": request.user.has_perm("jobs.change_queuesettings"),
        }

    def dashboard_view(self, request: HttpRequest) -> HttpResponse:
        return TemplateResponse(request, "admin/jobs/dashboard.html", self._dashboard_context(request))

    def dashboard_body_view(self, request: HttpRequest) -> HttpResponse:
        """Just the dashboard's body, which the page's inline script swaps in every few seconds."""
        return TemplateResponse(request, "admin/jobs/dashboard_body.html", self._dashboard_context(request))

    @staticmethod
    @require_POST
    def pause_view(request: HttpRequest) -> HttpResponse:
        if not request.user.has_perm("jobs.change_queuesettings"):
            raise PermissionDenied
        queue, paused = request.POST.get("queue", ""), request.POST.get("paused") == "1"
        try:
            services.set_queue_paused(queue, paused, actor=actor(request), reason=request.POST.get("reason"))
        except TaskForgeError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, f"Queue {queue} {'paused' if paused else 'resumed'}.")
        return HttpResponseRedirect(reverse("admin:jobs_job_dashboard"))

    def act_view(self, request: HttpRequest, job_id: uuid.UUID) -> HttpResponse:
        """One job's retry / cancel / DLQ / replay button on its detail page."""
        if request.method != "POST" or not self.has_act_permission(request):
            raise PermissionDenied
        single = {
            "retry": services.retry_job,
            "cancel": services.cancel_job,
            "dead-letter": dlq_services.dead_letter_job,
        }
        action = request.POST.get("action", "")
        if action not in single:
            raise PermissionDenied
        try:
            single[action](job_id, actor=actor(request), reason=request.POST.get("reason") or None)
        except TaskForgeError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, f"Job {job_id}: {action} done.")
        return HttpResponseRedirect(reverse("admin:jobs_job_change", args=[job_id]))

    def clone_view(self, request: HttpRequest, job_id: uuid.UUID) -> HttpResponse:
        """Enqueues a new job like this one, with a payload the operator may edit first."""
        if not request.user.has_perm("jobs.add_job"):
            raise PermissionDenied
        source = get_object_or_404(Job, id=job_id)
        form = CloneForm(request.POST or None, initial={"payload": json.dumps(source.payload, indent=2)})
        if request.method == "POST" and form.is_valid():
            try:
                created = services.enqueue_job(
                    source.job_type,
                    form.cleaned_data["payload"],
                    queue=source.queue,
                    priority=source.priority,
                    max_attempts=source.max_attempts,
                    timeout_ms=source.timeout_ms,
                ).job
            except TaskForgeError as exc:
                form.add_error("payload", str(exc))
            else:
                messages.success(request, f"Enqueued {created.id} as a clone of {source.id}.")
                return HttpResponseRedirect(reverse("admin:jobs_job_change", args=[created.id]))
        context = {
            **self.admin_site.each_context(request),
            "title": f"Clone {source.job_type} and enqueue",
            "source": source,
            "form": form,
            "opts": self.opts,
        }
        return TemplateResponse(request, "admin/jobs/job/clone.html", context)

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict | None = None
    ) -> HttpResponse:
        extra = {
            "can_act": self.has_act_permission(request),
            "can_clone": request.user.has_perm("jobs.add_job"),
            "tf_actions": [("retry", "Retry"), ("cancel", "Cancel"), ("dead-letter", "Move to DLQ")],
            **(extra_context or {}),
        }
        return super().change_view(request, object_id, form_url, extra)


class CloneForm(forms.Form):
    payload = forms.JSONField(widget=forms.Textarea(attrs={"rows": 16, "cols": 80}))


def audit_table(entries: QuerySet) -> str:
    """The operator actions on one target, oldest first, as an escaped table."""
    rows = format_html_join(
        "",
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        ((e.at, e.actor or "anonymous", e.action, e.reason or "") for e in entries.order_by("id")[:500]),
    )
    return format_html(
        '<table class="tf-audit"><tr><th>at</th><th>who</th><th>action</th><th>reason</th></tr>{}</table>',
        rows,
    )


def throughput_chart(points: list[dict], *, width: int = 600, height: int = 120) -> str:
    """Succeeded (green) and failed (red) per minute as inline SVG bars, built on the server."""
    if not points:
        return format_html('<p class="tf-chart-empty">{}</p>', "No throughput data (Redis unavailable).")
    peak = max(max(p["succeeded"], p["failed"]) for p in points) or 1
    step = width / len(points)
    bar = max(step / 2 - 1, 1)

    def rect(i: int, n: int, offset: float, colour: str, label: str) -> tuple:
        h = round(n / peak * (height - 14), 1)
        return (round(i * step + offset, 1), round(height - h, 1), round(bar, 1), h, colour, label)

    bars = format_html_join(
        "",
        '<rect x="{}" y="{}" width="{}" height="{}" fill="{}"><title>{}</title></rect>',
        (
            r
            for i, p in enumerate(points)
            for r in (
                rect(i, p["succeeded"], 0, "#198754", f"{p['minute']:%H:%M} succeeded {p['succeeded']}"),
                rect(i, p["failed"], bar, "#dc3545", f"{p['minute']:%H:%M} failed {p['failed']}"),
            )
        ),
    )
    return format_html(
        '<svg class="tf-chart" role="img" viewBox="0 0 {} {}" width="{}" height="{}">'
        '<text x="0" y="10" font-size="10">peak {}/min</text>{}</svg>',
        width,
        height,
        width,
        height,
        peak,
        bars,
    )


@admin.register(JobEvent)
class JobEventAdmin(ReadOnlyAdmin):
    list_display = ["id", "job_id", "type", "attempt", "worker_id", "at"]
    list_filter = ["type"]
    search_fields = ["=job__id"]
    ordering = ["-id"]
    show_full_result_count = False
    paginator = CappedCountPaginator


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    """Every operator action from the admin or the API: who, what, when and why."""

    list_display = ["at", "actor", "action", "target_type", "target_link", "reason"]
    list_filter = ["action", "target_type"]
    search_fields = ["=actor", "=target_id"]
    ordering = ["-id"]
    show_full_result_count = False

    @admin.display(description="target")
    def target_link(self, entry: AuditEntry) -> str:
        if entry.target_type == "job":
            url = reverse("admin:jobs_job_change", args=[entry.target_id])
            return format_html('<a href="{}">{}</a>', url, entry.target_id)
        return entry.target_id
