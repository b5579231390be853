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
An expression without a slot in the next :data:`HORIZON_YEARS` years is
refused (``"0 0 30 2 *"``, February 30), and so are croniter's random
(``R``) and hashed (``H``) fields: their slots are drawn anew each time.

:class:`Interval` takes a period: slots are ``start + n * every``
(``start`` defaults to the Unix epoch, so that an interval of a day falls
at 0:00 UTC and every worker agrees without storing anything).  One whose
next slot is past the year 9999 is refused.

A trigger stored before these checks may have no slot left: its
``next_after`` returns ``None``.
"""
import re
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta
from datetime import timezone
from zoneinfo import ZoneInfo
from zoneinfo import ZoneInfoNotFoundError

from croniter import CroniterBadDateError
from croniter import croniter

from plone.app.asyncjobs.engine.clock import EPOCH
from plone.app.asyncjobs.engine.clock import as_utc
from plone.app.asyncjobs.engine.clock import utcnow


#: A random or hashed item of a cron field (croniter's extensions).
_DRAWN_ITEM = re.compile(r"[hr](\(\d+-\d+\))?(/\d+)?", re.IGNORECASE)

#: How many years a cron expression's slots may be apart: a leap day's are
#: up to eight (2096, 2104).
HORIZON_YEARS = 10


def _zone(name):
    """The time zone of the IANA ``name``; ``ValueError`` if there is none.

    A name must look like one (at most 255 characters, at most four
    ``/``-separated parts of letters, digits, ``_+-.``) before the zoneinfo
    module looks it up: it would recurse through a part per ``/`` of a long
    name (``RecursionError``) and fail on an overlong one (``OSError``)."""
    if not isinstance(name, str):
        raise TypeError(f"timezone must be a name such as 'Europe/Brussels', not {name!r}")
    if len(name) > 255 or not re.fullmatch(
            r"[A-Za-z0-9_+-][A-Za-z0-9_.+-]*(/[A-Za-z0-9_+-][A-Za-z0-9_.+-]*){0,3}", name):
        raise ValueError(f"unknown timezone {name[:100]!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"unknown timezone {name!r}") from None


@dataclass(frozen=True)
class Cron:
    """Slots of the cron ``expression`` read in ``timezone`` (an IANA name)."""

    expression: str
    timezone: str = "UTC"

    def __post_init__(self):
        if not isinstance(self.expression, str) or not croniter.is_valid(self.expression):
            raise ValueError(f"invalid cron expression {self.expression!r}")
        if any(_DRAWN_ITEM.fullmatch(item) for field in self.expression.split()
               for item in field.split(",")):
            raise ValueError(f"cron expression {self.expression!r} has a random (R) or "
                             "hashed (H) field: every worker must compute the same slots")
        _zone(self.timezone)
        if self.next_after(utcnow()) is None:
            raise ValueError(f"cron expression {self.expression!r} has no slot "
                             f"in the next {HORIZON_YEARS} years")

    def next_after(self, moment):
        """The first slot strictly after the aware ``moment``, in UTC
        (``None`` if there is none in the :data:`HORIZON_YEARS` after it)."""
        return self._find(as_utc(moment, "moment"), previous=False)

    def latest_until(self, moment):
        """The last slot at or before the aware ``moment``, in UTC (``None``
        if there is none in the :data:`HORIZON_YEARS` before it)."""
        # get_prev is strictly before its start: at or before moment is
        # before a microsecond later.
        return self._find(as_utc(moment, "moment") + timedelta(microseconds=1), previous=True)

    def _find(self, start, previous):
        """The slot after (``previous``: before) the aware UTC ``start``, or
        ``None``."""
        found = croniter(self.expression, start.astimezone(_zone(self.timezone)),
                         max_years_between_matches=HORIZON_YEARS)
        try:
            slot = found.get_prev(datetime) if previous else found.get_next(datetime)
        except CroniterBadDateError:
            return None
        return slot.astimezone(timezone.utc)

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
        if self.next_after(utcnow()) is None:
            raise ValueError(f"an interval of {self.every} has no slot after now "
                             f"before the year {datetime.max.year + 1}")

    def next_after(self, moment):
        """The first slot strictly after the aware ``moment``, in UTC
        (``None`` past the year 9999)."""
        moment = as_utc(moment, "moment")
        if moment < self.start:
            return self.start
        try:
            return self.start + ((moment - self.start) // self.every + 1) * self.every
        except OverflowError:
            return None

    def latest_until(self, moment):
        """The last slot at or before the aware ``moment`` (``None`` before
        ``start``), in UTC."""
        moment = as_utc(moment, "moment")
        if moment < self.start:
            return None
        return self.start + ((moment - self.start) // self.every) * self.every

    def __str__(self):
        return f"every {self.every}"
