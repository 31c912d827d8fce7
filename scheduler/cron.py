"""Cron expressions of periodic schedules: validation and tick arithmetic, without I/O.

An expression has five fields (minute hour day-of-month month day-of-week), six with seconds
first (`*/2 * * * * *`: every two seconds), or is an alias such as `@hourly`. It is evaluated
in an IANA timezone, so `0 9 * * *` in Europe/Berlin is 09:00 local time in summer and winter.
Ticks are whole seconds; they come back as UTC datetimes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from zoneinfo import ZoneInfo, available_timezones

from croniter import CroniterBadDateError, CroniterError, croniter

MAX_EXPRESSION_LENGTH = 200


class CronError(ValueError):
    """An expression or a timezone TaskForge refuses; the message says why, for people."""


@cache
def _timezone_names() -> frozenset[str]:
    # Looked up in the list rather than tried: ZoneInfo would read any relative path it is given.
    return frozenset(available_timezones())


def check_timezone(name: str) -> ZoneInfo:
    """The zone called `name` (an IANA name such as "Europe/Berlin" or "UTC")."""
    if name not in _timezone_names():
        raise CronError("Unknown timezone: give an IANA name such as Europe/Berlin or UTC.")
    return ZoneInfo(name)


@dataclass(frozen=True)
class Cron:
    """A validated expression in its timezone."""

    expression: str
    zone: ZoneInfo

    @classmethod
    def parse(cls, expression: str, timezone: str = "UTC") -> Cron:
        """Validates both; an expression that can never fire (`0 0 30 2 *`) is refused too."""
        fields = expression.split()
        alias = len(fields) == 1 and expression.strip().startswith("@")
        if len(expression) > MAX_EXPRESSION_LENGTH or not (alias or len(fields) in (5, 6)):
            raise CronError(
                "Give 5 fields (minute hour day-of-month month day-of-week), 6 with seconds first, "
                "or an alias such as @hourly."
            )
        parsed = cls(" ".join(fields), check_timezone(timezone))
        parsed.next_after(datetime.now(UTC))
        return parsed

    def next_after(self, moment: datetime) -> datetime:
        """The first tick strictly after `moment`."""
        return self._step(moment, backwards=False)

    def previous_before(self, moment: datetime) -> datetime:
        """The last tick strictly before `moment`."""
        return self._step(moment, backwards=True)

    def _step(self, moment: datetime, *, backwards: bool) -> datetime:
        try:
            ticks = croniter(self.expression, moment.astimezone(self.zone), second_at_beginning=True)
            tick = ticks.get_prev(datetime) if backwards else ticks.get_next(datetime)
        except CroniterBadDateError:  # croniter looks 50 years ahead (or back)
            raise CronError("The expression has no tick within 50 years.") from None
        except CroniterError as exc:
            raise CronError(f"Invalid cron expression: {exc}") from None
        return tick.astimezone(UTC)
