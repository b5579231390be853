"""When a recurring job is due: the slots of a schedule.

A trigger computes *slots*, the instants at which a schedule wants a run.
Slots are a pure function of the trigger, so every worker of every process
computes the same ones (the database then decides which worker queues each
slot; see :mod:`.schedules`).

:class:`Cron` takes a cron expression (parsed by ``croniter``: five fields,
or six with seconds last) read in a time zone: ``Cron("0 9 * * *",
"Europe/Brussels")`` is 9:00 Brussels time, 8:00 UTC in winter and 7:00
UTC in summer.  Across a daylight saving change croniter's rules hold: a
local time that does not exist that day (2:30 when clocks jump from 2:00
to 3:00) gives the first instant after the jump, and a local time that
happens twice (2:30 when clocks go back from 3:00 to 2:00) gives a slot
each time: schedule daily jobs outside 2:00-3:00 local time, or in UTC.

:class:`Interval` takes a period: slots are ``start + n * every``
(``start`` defaults to the Unix epoch, so that an interval of a day falls
at 0:00 UTC and every worker agrees without storing anything).
"""
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta
from datetime import timezone
from zoneinfo import ZoneInfo
from zoneinfo import ZoneInfoNotFoundError

from croniter import croniter

from plone.app.asyncjobs.engine.clock import EPOCH
from plone.app.asyncjobs.engine.clock import as_utc


def _zone(name):
    if not isinstance(name, str):
        raise TypeError(f"timezone must be a name such as 'Europe/Brussels', not {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown timezone {name!r}") from None


@dataclass(frozen=True)
class Cron:
    """Slots of the cron ``expression`` read in ``timezone`` (an IANA name)."""

    expression: str
    timezone: str = "UTC"

    def __post_init__(self):
        if not isinstance(self.expression, str) or not croniter.is_valid(self.expression):
            raise ValueError(f"invalid cron expression {self.expression!r}")
        _zone(self.timezone)

    def next_after(self, moment):
        """The first slot strictly after the aware ``moment``, in UTC."""
        local = as_utc(moment, "moment").astimezone(_zone(self.timezone))
        found = croniter(self.expression, local).get_next(datetime)
        return found.astimezone(timezone.utc)

    def latest_until(self, moment):
        """The last slot at or before the aware ``moment``, in UTC."""
        local = as_utc(moment, "moment").astimezone(_zone(self.timezone))
        before = croniter(self.expression, local).get_prev(datetime).astimezone(timezone.utc)
        # get_prev is strictly before a moment that is a slot itself.
        after = self.next_after(before)
        return after if after <= moment else before

    def __str__(self):
        return f"cron {self.expression!r} ({self.timezone})"


@dataclass(frozen=True)
class Interval:
    """Slots every ``every`` (a positive timedelta) from ``start`` (aware)."""

    every: timedelta
    start: datetime = EPOCH

    def __post_init__(self):
        if not isinstance(self.every, timedelta) or self.every <= timedelta(0):
            raise ValueError(f"an interval must be a positive timedelta, not {self.every!r}")
        object.__setattr__(self, "start", as_utc(self.start, "start"))

    def next_after(self, moment):
        """The first slot strictly after the aware ``moment``, in UTC."""
        moment = as_utc(moment, "moment")
        if moment < self.start:
            return self.start
        return self.start + ((moment - self.start) // self.every + 1) * self.every

    def latest_until(self, moment):
        """The last slot at or before the aware ``moment`` (``None`` before
        ``start``), in UTC."""
        moment = as_utc(moment, "moment")
        if moment < self.start:
            return None
        return self.start + ((moment - self.start) // self.every) * self.every

    def __str__(self):
        return f"every {self.every}"
