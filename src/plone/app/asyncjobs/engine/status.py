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
"""
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
