"""A controllable clock for tests.

::

    with Clock(datetime(2026, 1, 1, tzinfo=timezone.utc)) as clock:
        ...
        clock.advance(seconds=90)

While active, every time the engine reads (job timestamps, scheduling,
dispatcher liveness) comes from the clock.
"""
from datetime import datetime
from datetime import timedelta
from datetime import timezone

from plone.app.asyncjobs.engine import clock as engine_clock


class Clock:
    """The engine's time source, frozen until advanced."""

    def __init__(self, now=None):
        self.now = engine_clock.as_utc(now or datetime.now(timezone.utc), "now")

    def __call__(self):
        return self.now

    def advance(self, **timedelta_arguments):
        """Move the time forward, e.g. ``advance(minutes=2)``; return the new time."""
        self.now += timedelta(**timedelta_arguments)
        return self.now

    def set(self, now):
        self.now = engine_clock.as_utc(now, "now")

    def install(self):
        engine_clock.set_time_source(self)
        return self

    def uninstall(self):
        engine_clock.set_time_source(None)

    def __enter__(self):
        return self.install()

    def __exit__(self, *exc_info):
        self.uninstall()
