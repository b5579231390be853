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
