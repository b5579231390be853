"""How a dispatcher's jobs were picked up, and how long they waited.

A job is *picked up* when a worker thread claims it.  How the thread came
to claim:

``push``
    a doorbell ring woke it (see :mod:`.wakeup`);
``timer``
    the dispatcher's timer woke it, when the job became due (a job queued
    with ``begin_after``), or when another dispatcher left it unclaimed;
``poll``
    the periodic look of the dispatcher or of the idle thread found it;
``next``
    the thread claimed it as it finished its previous job (the job had to
    wait for a free thread).

The *pickup latency* is the job's start minus the later of its due time
and the commit that made it pending: how long a ready job waited.
"""
import collections
import math
import threading
from datetime import datetime
from datetime import timedelta
from datetime import timezone

from persistent.TimeStamp import TimeStamp
from ZODB.utils import z64


PUSH, TIMER, POLL, NEXT = "push", "timer", "poll", "next"
HOW = (PUSH, TIMER, POLL, NEXT)

#: How far back :meth:`Pickups.summary` looks.
WINDOW = timedelta(hours=1)

#: At most this many pickups are remembered (the newest).
LIMIT = 20_000


def committed_at(serial):
    """The commit time of a transaction id, as an aware UTC datetime, or
    ``None`` for an object never committed."""
    if not serial or serial == z64:
        return None
    return datetime.fromtimestamp(TimeStamp(serial).timeTime(), timezone.utc)


def latency(started, due, pending_since):
    """``started`` minus the later of ``due`` and ``pending_since`` (either
    may be ``None``), as a timedelta; ``None`` if both are unknown."""
    ready = max((moment for moment in (due, pending_since) if moment is not None),
                default=None)
    return None if ready is None else started - ready


def percentiles(values, points=(50, 90, 99)):
    """``{"p50": ..., "p90": ..., "p99": ..., "max": ...}`` of ``values``
    (nearest rank), or ``None`` when there are none."""
    ordered = sorted(values)
    if not ordered:
        return None
    summary = {f"p{point}": ordered[max(0, math.ceil(point / 100 * len(ordered)) - 1)]
               for point in points}
    summary["max"] = ordered[-1]
    return summary


class Pickups:
    """The recent pickups of one dispatcher, in memory (thread-safe)."""

    def __init__(self, limit=LIMIT):
        self._entries = collections.deque(maxlen=limit)
        self._lock = threading.Lock()

    def record(self, started, how, waited):
        """Note a pickup: the job's start, one of :data:`HOW` (or ``None``
        if unknown), and its latency (a timedelta, or ``None``)."""
        with self._lock:
            self._entries.append((started, how, waited))

    def summary(self, now, window=WINDOW):
        """The pickups started after ``now - window``: ``{"jobs": count,
        "by": {how: count}, "latency": percentiles of the known latencies
        (timedeltas) or None}``."""
        since = now - window
        with self._lock:
            recent = [entry for entry in self._entries if entry[0] >= since]
        by = collections.Counter(how or "unknown" for _, how, _ in recent)
        waits = [waited for _, _, waited in recent if waited is not None]
        return {"jobs": len(recent), "by": dict(by), "latency": percentiles(waits)}
