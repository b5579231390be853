"""The engine's notion of the current time.

Every timestamp the engine stores or compares is a timezone-aware UTC
``datetime`` obtained from :func:`utcnow`.  Tests replace the time source
with :class:`plone.app.asyncjobs.engine.testing.clock.Clock`, which calls
:func:`set_time_source`.
"""
import time
from datetime import datetime
from datetime import timedelta
from datetime import timezone


def _system_time():
    return datetime.now(timezone.utc)


_time_source = _system_time


def utcnow():
    """Return the current time as an aware UTC datetime."""
    return _time_source()


def now_microseconds():
    """Return ``to_microseconds(utcnow())``: the current time as integer
    microseconds since the epoch.  With the system clock, read without
    making a datetime (both round down to the microsecond), for callers
    that compare times in microseconds, such as every put."""
    if _time_source is _system_time:
        return time.time_ns() // 1000
    return to_microseconds(_time_source())


def set_time_source(source=None):
    """Make ``source()`` the current time; ``None`` restores the system clock."""
    global _time_source
    _time_source = source or _system_time


def as_utc(value, name="datetime"):
    """Return the aware ``value`` converted to UTC.

    Naive datetimes are ambiguous across machines in different time zones,
    so they are refused with a ``ValueError`` naming the argument.
    """
    if not isinstance(value, datetime):
        raise TypeError(f"{name} must be a datetime, not {type(value).__name__}")
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        raise ValueError(
            f"{name} must be timezone-aware (for example "
            f"datetime.now(timezone.utc)); got the naive {value!r}"
        )
    try:
        return value.astimezone(timezone.utc)
    except OverflowError:
        raise ValueError(f"{name} {value!r} is out of range in UTC") from None


EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def to_microseconds(value):
    """Return the aware ``value`` as integer microseconds since the epoch."""
    delta = value - EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_microseconds(value):
    """Return the aware UTC datetime ``value`` microseconds after the epoch
    (the inverse of :func:`to_microseconds`)."""
    return EPOCH + timedelta(microseconds=value)
