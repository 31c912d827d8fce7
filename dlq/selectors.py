"""Dead-letter reads for the API and the admin."""

from __future__ import annotations

import uuid

from django.db.models import QuerySet

from dlq.models import DeadLetter


def dead_letter_queryset(*, queue: str | None = None, job_type: str | None = None) -> QuerySet[DeadLetter]:
    """Dead letters matching the filters, most recent failure first."""
    qs = DeadLetter.objects.all()
    if queue:
        qs = qs.filter(queue=queue)
    if job_type:
        qs = qs.filter(job_type=job_type)
    return qs.order_by("-failed_at", "-job_id")


def dead_letter_page(
    *, queue: str | None, job_type: str | None, limit: int, offset: int
) -> tuple[list[DeadLetter], int]:
    """One page of dead letters and how many match."""
    qs = dead_letter_queryset(queue=queue, job_type=job_type)
    return list(qs[offset : offset + limit]), qs.count()


def get_dead_letter(job_id: str) -> DeadLetter | None:
    """The dead letter of this job (with the job), or None, also for a malformed id."""
    try:
        as_id = uuid.UUID(job_id)
    except ValueError:
        return None
    return DeadLetter.objects.select_related("job").filter(job_id=as_id).first()
