"""Cancelling a running job: a request stored in the database.

A running job cannot be stopped from outside: an administrator can only ask
it to stop.  The request is an entry in ``job.annotations`` (a BTree stored
apart from the job), so that writing it never conflicts with the commit in
which the worker stores the job's outcome (which writes the job, not its
annotations): the request and the outcome can be committed in either order,
and a worker never reruns a job because someone asked it to stop.

The job sees the request through :func:`.local.cancel_requested` and
:func:`.local.check_cancelled`; how it then ends is described there.
"""
from plone.app.asyncjobs.engine.clock import utcnow
from plone.app.asyncjobs.engine.exceptions import BadStatusError
from plone.app.asyncjobs.engine.status import ACTIVE


#: The annotation holding a job's cancel request: ``(when, reason)``, when
#: an aware UTC datetime, reason the message of the job's
#: :class:`~.exceptions.CancelledError` if it honours the request.
CANCEL_REQUEST = "cancel_request"


def request_cancel(job, reason):
    """Ask the running (ACTIVE) ``job`` to stop, giving ``reason``.

    Commits nothing.  A job asked already keeps its first request (the
    time and reason it can see).  Other statuses raise
    :class:`~.exceptions.BadStatusError`.
    """
    if job.status != ACTIVE:
        raise BadStatusError(f"only a running job can be asked to stop; this one is {job.status}")
    if CANCEL_REQUEST not in job.annotations:
        job.annotations[CANCEL_REQUEST] = (utcnow(), reason)


def cancel_request(job):
    """``(when, reason)`` of the cancel request made for ``job``, or ``None``."""
    return job.get_annotation(CANCEL_REQUEST)
