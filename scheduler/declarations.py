"""Periodic schedules declared in code, next to their handler::

    @periodic("0 3 * * *", name="nightly-report", timezone="Europe/Berlin", payload={"days": 1})
    @handler("reports.build")
    def build_report(ctx, payload): ...

Each scheduler syncs the declarations into `periodic_schedules` when it starts
(scheduler.schedules.sync_declared_schedules): it creates them, re-applies the fields the code
owns, and deletes declared rows the code no longer has; schedules made in the API or the admin
are never touched. Declarations are validated at import, so a bad one fails at start-up.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from django.core.exceptions import ValidationError

from scheduler.models import MisfirePolicy, PeriodicSchedule
from workers.registry import HandlerFunc, job_type_of


@dataclass(frozen=True)
class Declaration:
    """One schedule as the code declares it: the fields the code owns, and the handler it fires."""

    func: HandlerFunc
    name: str
    cron: str
    timezone: str
    payload: Any
    queue: str | None
    priority: int
    misfire_policy: str
    catch_up_limit: int
    jitter_ms: int

    def as_schedule(self, job_type: str) -> PeriodicSchedule:
        """An unsaved row for this declaration."""
        fields = {k: v for k, v in asdict(self).items() if k != "func"}
        return PeriodicSchedule(job_type=job_type, declared=True, **fields)

    def job_type(self) -> str:
        """Looked up at sync, so @periodic may sit above or below @handler."""
        job_type = job_type_of(self.func)
        if job_type is None:
            raise ValueError(f"periodic schedule {self.name!r}: {self.func!r} is not a registered handler")
        return job_type


_declarations: dict[str, Declaration] = {}


def periodic(
    cron: str,
    *,
    name: str,
    timezone: str = "UTC",
    payload: Any = None,
    queue: str | None = None,
    priority: int = 0,
    misfire: str = MisfirePolicy.RUN_ONCE,
    catch_up_limit: int = 10,
    jitter_ms: int = 0,
) -> Callable[[HandlerFunc], HandlerFunc]:
    """Declares that the decorated handler runs at every tick of `cron` in `timezone`."""

    def declare(func: HandlerFunc) -> HandlerFunc:
        existing = _declarations.get(name)
        if existing is not None and existing.func is not func:
            raise ValueError(f"periodic schedule {name!r} is already declared for {existing.func!r}")
        declaration = Declaration(
            func, name, cron, timezone, {} if payload is None else payload, queue, priority, misfire,
            catch_up_limit, jitter_ms,
        )  # fmt: skip
        try:  # the job type and the name's uniqueness are checked at sync
            declaration.as_schedule("-").full_clean(validate_unique=False, validate_constraints=False)
        except ValidationError as exc:
            raise ValueError(f"periodic schedule {name!r}: {exc.message_dict}") from None
        _declarations[name] = declaration
        return func

    return declare


def declared_schedules() -> list[Declaration]:
    """Every declaration imported so far (handler modules are imported at start-up)."""
    return list(_declarations.values())
