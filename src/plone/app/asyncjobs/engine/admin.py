"""What an administrator does to jobs: find, cancel, retry, forget, purge.

These functions change objects in the caller's transaction and commit
nothing; the caller commits (a Plone request does so when it ends).  Bad
requests raise ``LookupError`` (no such job) or ``BadStatusError`` (not in
a status that allows it) with a message meant for the administrator.
"""
from ZODB.POSException import POSKeyError

from plone.app.asyncjobs.engine import composite
from plone.app.asyncjobs.engine.cancel import request_cancel
from plone.app.asyncjobs.engine.exceptions import BadStatusError
from plone.app.asyncjobs.engine.exceptions import DuplicateJobError
from plone.app.asyncjobs.engine.ids import load
from plone.app.asyncjobs.engine.ids import object_id
from plone.app.asyncjobs.engine.interfaces import IJob
from plone.app.asyncjobs.engine.internal import is_internal
from plone.app.asyncjobs.engine.listing import histories
from plone.app.asyncjobs.engine.status import ACTIVE
from plone.app.asyncjobs.engine.status import COMPLETED
from plone.app.asyncjobs.engine.status import PENDING


#: The annotation keys linking a retried job and its retries, by integer
#: oid: a retry's ``RETRY_OF`` names its original, the original's
#: ``RETRIED_AS`` every retry of it, oldest first (a tuple; an integer in
#: jobs retried before it kept them all).
RETRIED_AS = "retried_as"
RETRY_OF = "retry_of"


def find_job(connection, oid, database_name=None):
    """The job with the integer ``oid``; ``LookupError`` if there is none."""
    try:
        job = load(connection, oid, database_name)
    except (POSKeyError, KeyError):
        job = None
    if not IJob.providedBy(job):
        raise LookupError(f"there is no job {oid}")
    return job


def cancel(job, reason="cancelled"):
    """Cancel a pending job (see :meth:`.Job.cancel`), or ask a running one
    to stop (see :func:`.cancel.request_cancel`; a running composite job
    also cancels its parts, see :mod:`.composite`); ``reason`` is the
    message of its :class:`~.exceptions.CancelledError`."""
    if job.status == ACTIVE:
        request_cancel(job, reason)
        if composite.is_composite(job):
            composite.cancel_parts(job, reason)
        return
    if job.status != PENDING:
        raise BadStatusError(f"only a pending or running job can be cancelled; "
                             f"this one is {job.status}")
    job.cancel(reason)


def retry(job):
    """Queue a copy of the finished ``job`` in its queue; return the copy.

    The two are linked by the annotations :data:`RETRIED_AS` and
    :data:`RETRY_OF`.  A copy has its original's unique key: while another
    job holds it, that job does the work, and the retry is refused.
    """
    try:
        new = job.queue.put(_retry_copy(job), on_duplicate="raise")
    except DuplicateJobError as error:
        raise BadStatusError(f"cannot retry this job: job {object_id(error.job)[0]} "
                             f"holds its unique key {job.unique_key!r}") from None
    new.annotations[RETRY_OF] = object_id(job)[0]
    job.annotations[RETRIED_AS] = retries(job) + (object_id(new)[0],)
    return new


def check_retry(job):
    """Raise ``BadStatusError`` if :func:`retry` would refuse ``job``."""
    _retry_copy(job)


def _retry_copy(job):
    if job.status != COMPLETED:
        raise BadStatusError(f"only a finished job can be retried; this one is {job.status}")
    if job.queue is None:
        raise BadStatusError("this job is not in a queue, so it cannot be retried")
    owner = job.owning_job()
    if owner is not None:
        # Its copy would run alone, without the job whose result it takes.
        raise BadStatusError(f"this job is a callback of job {object_id(owner)[0]}: "
                             "retry that job instead")
    if is_internal(job):
        raise BadStatusError("this job is one the engine made for itself; it cannot be retried")
    if not job.load_arguments():
        raise BadStatusError("its arguments cannot be loaded (a class of theirs is gone), "
                             "so a copy could not be made")
    try:
        job.queue.quotas.check_names(job.quota_names)  # one may have been removed since
        return job.copy()
    except ValueError as error:  # the job involves other jobs, or a quota is gone
        raise BadStatusError(str(error)) from None


def retries(job):
    """The integer oids of the retries of ``job``, oldest first."""
    oids = job.get_annotation(RETRIED_AS, ())
    return (oids,) if isinstance(oids, int) else tuple(oids)


def forget(job):
    """Remove a finished job from the history it is kept in."""
    if job.status != COMPLETED:
        raise BadStatusError(f"only a finished job can be removed; this one is {job.status}")
    history = getattr(job.parent, "completed", None)
    if history is None or job not in history:
        raise LookupError("this job is not in a history any more")
    history.remove(job)


def purge(queues, before):
    """Forget every finished job completed before the aware datetime
    ``before``, in all ``queues``; return how many."""
    return sum(history.purge(before)
               for queue in queues.values() for history in histories(queue))
