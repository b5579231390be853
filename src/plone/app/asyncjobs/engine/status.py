"""Job statuses.

A job moves through these statuses::

    NEW --put--> PENDING --claim--> ASSIGNED --start--> ACTIVE
        --result--> CALLBACKS --callbacks done--> COMPLETED

``NEW``, ``PENDING`` and ``ASSIGNED`` are derived from where the job is
(nowhere, in a queue, held by an agent); ``ACTIVE``, ``CALLBACKS`` and
``COMPLETED`` are stored on the job.  A dispatcher claims and starts a job
in one transaction, so other processes normally see it go from ``PENDING``
straight to ``ACTIVE``.  A job that is retried or rescheduled goes back to
``PENDING``.  ``COMPLETED`` is final.

The values are plain strings, so they print, compare and serialise simply.

This module is the vocabulary every view of jobs uses (the console, the
REST API, the monitor commands, the metrics): the statuses, how they group
(:data:`WAITING`, :data:`IN_PROGRESS`), how a completed job ended
(:func:`outcome_of`), and the words for people (:data:`LABELS`); and the
states of dispatchers (:func:`dispatcher_state`).
"""
from plone.app.asyncjobs.engine.clock import utcnow
from plone.app.asyncjobs.engine.exceptions import CancelledError
from plone.app.asyncjobs.engine.failure import is_failure

NEW = "new"
PENDING = "pending"
ASSIGNED = "assigned"
ACTIVE = "active"
CALLBACKS = "callbacks"
COMPLETED = "completed"

ALL = (NEW, PENDING, ASSIGNED, ACTIVE, CALLBACKS, COMPLETED)

#: The values zc.async gave the same statuses (``zc.async.interfaces``).
#: The names are the same, the values are not: code ported from zc.async
#: that compares with the constants works unchanged; code that compared
#: with literal strings (``'completed-status'``) must use the constants.
#: Also used to describe jobs that zc.async left in old databases.
ZC_ASYNC_VALUES = {
    NEW: "new-status",
    PENDING: "pending-status",
    ASSIGNED: "assigned-status",
    ACTIVE: "active-status",
    CALLBACKS: "callback-status",
    COMPLETED: "completed-status",
}

#: The statuses of a job waiting to be claimed.
WAITING = (NEW, PENDING)
#: The statuses of a job an agent holds: claimed, running, or running its
#: callbacks.
IN_PROGRESS = (ASSIGNED, ACTIVE, CALLBACKS)

#: How a job ended, read from its result (see :func:`outcome_of`): a
#: cancelled job is a failed one whose failure is a ``CancelledError``.
SUCCEEDED = "succeeded"
FAILED = "failed"
CANCELLED = "cancelled"

#: Words for people, by status and by outcome (the console translates them).
LABELS = {
    NEW: "new",
    PENDING: "pending",
    ASSIGNED: "assigned",
    ACTIVE: "active",
    CALLBACKS: "running callbacks",
    COMPLETED: "completed",
    SUCCEEDED: "succeeded",
    FAILED: "failed",
    CANCELLED: "cancelled",
}


def outcome_of(result):
    """:data:`SUCCEEDED`, :data:`FAILED` or :data:`CANCELLED` for a job
    whose result is ``result`` (the caller knows the job has one)."""
    if not is_failure(result):
        return SUCCEEDED
    return CANCELLED if result.check(CancelledError) else FAILED


# -- dispatchers ------------------------------------------------------------------

#: The states of a dispatcher in a queue (its record there; see
#: :func:`dispatcher_state`).  Pausing is apart: a paused dispatcher is
#: alive, and claims nothing until resumed.
ALIVE = "alive"
STUCK = "stuck"
DEAD = "dead"
DEACTIVATED = "deactivated"
#: The dispatcher states, worst first: a dispatcher serving several queues
#: is shown in the worst state of its records.
DISPATCHER_STATES = (DEAD, STUCK, DEACTIVATED, ALIVE)


def dispatcher_state(record, now=None):
    """:data:`ALIVE`, :data:`STUCK` (pings overdue, not dead yet),
    :data:`DEAD` or :data:`DEACTIVATED`: the state of the dispatcher
    record ``record`` at ``now`` (default: the current time).

    A live dispatcher's last sign is at most about ``ping_interval`` old;
    it counts as stuck from halfway between that and ``ping_death_interval``.
    """
    if not record.activated:
        return DEACTIVATED
    if record.dead:
        return DEAD
    last = max(t for t in (record.last_ping, record.activated) if t is not None)
    overdue = (record.ping_interval + record.ping_death_interval) / 2
    if (now or utcnow()) - last > overdue:
        return STUCK
    return ALIVE
