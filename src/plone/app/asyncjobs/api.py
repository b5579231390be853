"""Queue background jobs from Plone: the preferred spelling.

::

    from plone.app.asyncjobs import api

    def make_preview(context, size):          # a module-level function
        ...

    job = api.queue_job(make_preview, context, 800)
    job = api.queue_job(make_preview, context, 800, delay=timedelta(minutes=5))

In a worker, ``make_preview(context, 800)`` is called

* in a transaction of its own, committed with the job's result (so the job
  exists only if the transaction that queued it commits, and its changes
  are undone if it raises);
* in the site the job was queued in (``zope.component.hooks.getSite()``,
  ``plone.api.portal.get()``), with a request whose URLs are those of the
  queuing request, virtual hosting included (``context.absolute_url()``);
* as the user who queued it (Anonymous too), with that user's permissions:
  an ``Unauthorized`` becomes the job's failure;
* with the context found by its path, or by its UID if it moved; if it was
  deleted, the job fails with :class:`ContextNotFoundError`.

Pass plain values as arguments (strings, numbers, UIDs, paths), not
content objects: arguments are stored in the database with the job.

When the job has finished, ``IJobSuccess`` or ``IJobFailure`` (see
:mod:`plone.app.asyncjobs.interfaces`) is notified in the same context; a
batch notifies once, when all its jobs have finished.

Every function here calls the registered ``IAsyncService`` utility, so a
site (or an add-on) that registers its own changes them too.

The keyword arguments of these functions (``delay``, ``queue``,
``quota_names``, ``begin_by``, ``retry_policy``, ``priority``,
``unique_key``, ``unique_while``, ``on_duplicate``, ``timeout``) are not passed on to the
job's function; use :func:`make_job` with :func:`queue_serial_jobs` or the
``IAsyncService`` utility when the function itself takes such names.
"""
from zope.component import getUtility

from plone.app.asyncjobs.engine import composite
from plone.app.asyncjobs.engine.exceptions import DuplicateJobError
from plone.app.asyncjobs.engine.failure import is_failure
from plone.app.asyncjobs.engine.failure import traceback_text
from plone.app.asyncjobs.service.exceptions import ContextNotFoundError
from plone.app.asyncjobs.service.exceptions import ExecutionContextError
from plone.app.asyncjobs.service.exceptions import SiteNotFoundError
from plone.app.asyncjobs.service.exceptions import UserNotFoundError
from plone.app.asyncjobs.interfaces import IAsyncService
from plone.app.asyncjobs.service.service import as_begin_after
from plone.app.asyncjobs.service.service import makeJob


__all__ = [
    "ContextNotFoundError",
    "DuplicateJobError",
    "ExecutionContextError",
    "SiteNotFoundError",
    "UserNotFoundError",
    "get_queue",
    "get_queues",
    "is_failure",
    "make_job",
    "queue_job",
    "queue_jobs",
    "queue_parallel_jobs",
    "queue_serial_jobs",
    "traceback_text",
]

def _service():
    return getUtility(IAsyncService)


def queue_job(func, context, *args, delay=None, queue=None, quota_names=(),
              begin_by=None, retry_policy=None, priority=None, unique_key=None,
              unique_while=None, on_duplicate="return", timeout=None, **kwargs):
    """Queue ``func(context, *args, **kwargs)``; return the job.

    :param delay: start no earlier than this: a ``timedelta``, a number of
        seconds, or a timezone-aware ``datetime``; ``None`` starts as soon
        as a worker is free.
    :param queue: a queue name; ``None`` is the site's default queue
        (registry setting ``plone.app.asyncjobs.default_queue``, ``''``
        unless changed).  Other unknown names raise ``LookupError``.
    :param quota_names: names of quotas of the queue the job counts
        against; ``()``: none.
    :param begin_by: a ``timedelta``: if no worker has started the job
        that long after its start time, it fails with a ``TimeoutError``
        instead of running late; ``None``: no deadline.
    :param retry_policy: a retry policy name (``"never"``, ``"default"``,
        ``"forever"``, ``"delayed"``, or one an add-on registered) or
        factory; ``None``: the site's default policy (registry setting
        ``plone.app.asyncjobs.default_retry_policy``), else the engine's.
    :param priority: an integer: among jobs due, higher priorities start
        first; ``None``: 0.
    :param unique_key: a non-empty string: while a job of the queue with
        this key is pending (or, with ``unique_while=("pending",
        "active")``, until it completed), that job is returned and
        nothing is queued ("reindex this folder" clicked five times
        queues one job).  Two requests queuing one key at once conflict,
        and the retried one finds the other's job.
    :param on_duplicate: ``"return"`` the job holding the key, or
        ``"raise"`` :class:`DuplicateJobError` (its ``job`` is that job).
    :param timeout: seconds (a positive number) the job may run: then it
        is asked to stop (``check_cancelled()`` raises ``JobTimeoutError``),
        and abandoned after the queue's grace period, its later writes never
        committed; ``None``: the queue's ``default_timeout``, if any (see
        the engine's "Time limits").
    """
    service = _service()
    job = service.wrapJob(makeJob(func, context, *args, **kwargs))
    return service.put(
        job, queue=queue, quota_names=quota_names, begin_after=as_begin_after(delay),
        begin_by=begin_by, retry_policy=retry_policy, context=context, priority=priority,
        unique_key=unique_key, unique_while=unique_while, on_duplicate=on_duplicate,
        timeout=timeout,
    )


def queue_jobs(job_infos, delay=None, queue=None, quota_names=(), begin_by=None,
               retry_policy=None, priority=None, timeout=None):
    """Queue a job for each job info (from :func:`make_job`), all with the
    same options (those of :func:`queue_job`); return the list of jobs.

    The fast way to queue many jobs in one transaction, one per object
    of a large folder, say::

        api.queue_jobs([api.make_job(reindex, context, uid) for uid in uids])

    Jobs of one transaction that share a quota of size one still start
    one after the other, in the order given.
    """
    job_infos = list(job_infos)
    service = _service()
    return service.put_many(
        [service.wrapJob(info) for info in job_infos], queue=queue,
        quota_names=quota_names, begin_after=as_begin_after(delay), begin_by=begin_by,
        retry_policy=retry_policy, context=job_infos[0][1] if job_infos else None,
        priority=priority, timeout=timeout,
    )


def make_job(func, context, *args, **kwargs):
    """Describe a job for :func:`queue_jobs`, :func:`queue_serial_jobs` or
    :func:`queue_parallel_jobs`."""
    return makeJob(func, context, *args, **kwargs)


def queue_serial_jobs(*job_infos, delay=None, queue=None, quota_names=(),
                      begin_by=None, retry_policy=None):
    """Queue jobs (from :func:`make_job`) that run one after the other.

    Returns the composite job; once it completes, its result is the tuple of
    the inner jobs (each with its own ``status`` and ``result``).  A failing
    inner job does not stop the next ones.  ``quota_names`` and
    ``retry_policy`` apply to each inner job; ``delay`` and ``begin_by`` to
    the start of the first.  The batch notifies ``IJobSuccess`` (or
    ``IJobFailure``) once, when it has finished, in its first job's
    context, with that tuple; its jobs notify nothing.  No job info makes
    a batch that finishes at once with ``()``.
    """
    return _service().put_composite(
        composite.serial, job_infos, queue=queue, quota_names=quota_names,
        begin_after=as_begin_after(delay), begin_by=begin_by, retry_policy=retry_policy,
    )


def queue_parallel_jobs(*job_infos, delay=None, queue=None, quota_names=(),
                        begin_by=None, retry_policy=None):
    """Queue jobs (from :func:`make_job`) that may run at the same time.

    As many run at once as the workers' agents and the quotas allow.  See
    :func:`queue_serial_jobs` for the result and the arguments.
    """
    return _service().put_composite(
        composite.parallel, job_infos, queue=queue, quota_names=quota_names,
        begin_after=as_begin_after(delay), begin_by=begin_by, retry_policy=retry_policy,
    )


def get_queues(context=None):
    """The queues container (name to queue) of the database ``context`` (or
    the current site) is stored in; created if no worker ever did."""
    return _service().getQueues(context)


def get_queue(name=None, context=None):
    """The queue ``name``; ``None`` is the site's default queue."""
    return _service().getQueue(name, context)
