"""Dead-letter writes: move jobs into the DLQ, replay them out. The DLQ lives in Postgres."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from django.db import transaction

from dlq.models import DeadLetter
from jobs import sql
from jobs.models import AuditEntry, Job
from jobs.services import act_on_job, requeue_jobs
from jobs.states import JobState

REPLAY_BATCH = 1000


def dead_letter_jobs(
    *, ids: Sequence[uuid.UUID], actor: str | None = None, reason: str | None = None
) -> list[uuid.UUID]:
    """Any non-terminal job -> DLQ with a dead_letters row; a running job's worker is fenced off."""
    if not ids:
        return []
    rows = sql.fetch(
        sql.DEAD_LETTER_JOBS, {"ids": list(ids), "actor": actor, "reason": reason or "moved by operator"}
    )
    return [r["id"] for r in rows]


def dead_letter_job(job_id: str | uuid.UUID, *, actor: str | None = None, reason: str | None = None) -> Job:
    """One job to the DLQ; 404/409 as act_on_job."""
    return act_on_job(
        job_id, "dead-letter", lambda ids: dead_letter_jobs(ids=ids, actor=actor, reason=reason)
    )


def replay_dead_letters(*, ids: Sequence[uuid.UUID], actor: str | None = None) -> list[uuid.UUID]:
    """DLQ -> QUEUED with attempts, error and lease reset; the dead letter is removed."""
    return requeue_jobs(ids=ids, from_states=[JobState.DLQ], event="replayed", actor=actor, reason=None)


def replay_dead_letter(job_id: str | uuid.UUID, *, actor: str | None = None) -> Job:
    """Replays one dead-lettered job; 409 unless it is in the DLQ."""
    return act_on_job(job_id, "replay", lambda ids: replay_dead_letters(ids=ids, actor=actor))


def delete_dead_letters(
    *, ids: Sequence[uuid.UUID], actor: str | None = None, reason: str | None = None
) -> list[uuid.UUID]:
    """Deletes dead-lettered jobs for good (job, events, dead letter); jobs elsewhere are kept.

    The rows are locked first, so a concurrent replay either wins (the job is kept) or waits
    and finds nothing. The job's events go with it, so its audit entries are the only trace.
    """
    if not ids:
        return []
    with transaction.atomic():
        doomed = list(
            Job.objects.select_for_update()
            .filter(id__in=ids, state=JobState.DLQ)
            .order_by("id")
            .values_list("id", "queue", "job_type")
        )
        deleted = [job_id for job_id, _, _ in doomed]
        Job.objects.filter(id__in=deleted).delete()  # cascades to its events and dead letter
        AuditEntry.objects.bulk_create(
            AuditEntry(
                actor=actor,
                action="delete",
                target_type="job",
                target_id=str(job_id),
                reason=reason,
                details={"queue": queue, "jobType": job_type},
            )
            for job_id, queue, job_type in doomed
        )
    return deleted


def replay_matching(
    *, queue: str | None = None, job_type: str | None = None, actor: str | None = None
) -> int:
    """Replays every dead letter matching the filter, a batch at a time; safe to run twice."""
    letters = DeadLetter.objects.order_by("failed_at", "job_id")
    if queue:
        letters = letters.filter(queue=queue)
    if job_type:
        letters = letters.filter(job_type=job_type)
    total = 0
    while batch := list(letters.values_list("job_id", flat=True)[:REPLAY_BATCH]):
        replayed = replay_dead_letters(ids=batch, actor=actor)
        total += len(replayed)
        if not replayed:  # all taken by a concurrent replay meanwhile; never spin
            break
    return total
