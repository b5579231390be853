"""The ``IAsyncService`` utility: plone.app.async's API on the new engine.

Everything here works in the caller's transaction: the queues container is
found through the connection of the context (or of the site), and a job put
in a queue exists once that transaction commits.
"""
from datetime import timedelta

from zope.component import queryUtility
from zope.component.hooks import getSite
from zope.interface import implementer

from plone.app.asyncjobs.engine import composite
from plone.app.asyncjobs.engine import retry
from plone.app.asyncjobs.engine.clock import utcnow
from plone.app.asyncjobs.engine.interfaces import IJob
from plone.app.asyncjobs.interfaces import IAsyncService
from plone.app.asyncjobs.service.context import ExecutionContext
from plone.app.asyncjobs.service.context import main_jar
from plone.app.asyncjobs.service.jobs import ContextJob
from plone.app.asyncjobs.service.jobs import EventCallback
from plone.app.asyncjobs.service.ordering import put_in_order
from plone.app.asyncjobs.service.queues import DEFAULT_QUOTA
from plone.app.asyncjobs.service.queues import get_queues
from plone.app.asyncjobs.service.queues import resolve_queue


#: Prefix of the registry records of ``IAsyncJobsSettings``.
SETTINGS_PREFIX = "plone.app.asyncjobs"


def setting(name, default):
    """A value of ``IAsyncJobsSettings`` in the current site's registry,
    or ``default`` where the add-on is not installed."""
    try:
        from plone.registry.interfaces import IRegistry
    except ImportError:  # pragma: no cover - Plone always has it
        return default
    registry = queryUtility(IRegistry)
    if registry is None:
        return default
    value = registry.get(f"{SETTINGS_PREFIX}.{name}", None)
    return default if value is None else value


def default_queue_name():
    return setting("default_queue", "") or ""


def default_retry_policy():
    return setting("default_retry_policy", "") or None


def makeJob(func, context, *args, **kwargs):
    """Return the job info ``(func, context, args, kwargs)`` the batch
    methods take."""
    return (func, context, args, kwargs)


def connection_for(context=None):
    """The connection to the main database (the Zope application's) through
    which ``context`` (or, without one, the current site) is reached; a
    site stored in a mounted database is reached through the main one,
    where the workers look for queues.

    A context reached through no database (a string, an object stored
    nowhere) raises ``ValueError`` rather than being passed over for the
    current site: the caller meant another database, or no object at all.
    """
    if context is None:
        jar = main_jar(getSite())
        if jar is None:
            raise LookupError("cannot find the database: give a context stored in it, "
                              "or call this while a site is set (as during a request)")
        return jar
    jar = main_jar(context)
    if jar is None:
        raise ValueError(f"the context {context!r} is not reached through a database: "
                         "give an object stored in one (or acquired from one)")
    return jar


def _check_job(job):
    """Refuse what is not a job: a bare function would be queued without
    its context, site or user, and fail in the worker."""
    if not IJob.providedBy(job):
        raise TypeError(f"put takes a job (see wrapJob and makeJob), not {job!r}; "
                        "to queue a function, use queueJob or api.queue_job")


def as_begin_after(delay):
    """An aware datetime for ``delay``: a timedelta, a number of seconds,
    or an aware datetime (returned as it is); ``None`` stays ``None``."""
    if delay is None or hasattr(delay, "tzinfo"):
        return delay
    if isinstance(delay, bool):  # an int, which True would be: one second
        raise TypeError(f"delay must be a timedelta, seconds or a datetime, not {delay!r}")
    if not isinstance(delay, timedelta):
        delay = timedelta(seconds=delay)
    return utcnow() + delay


@implementer(IAsyncService)
class AsyncService:
    """See :class:`~plone.app.asyncjobs.interfaces.IAsyncService`.

    Stateless: one instance serves every thread.
    """

    # -- queues ---------------------------------------------------------------

    def getQueues(self, context=None):
        return get_queues(connection_for(context))

    def getQueue(self, queue=None, context=None):
        """The queue ``queue`` (a name; ``None``: the site's default queue)."""
        return self._queue(queue, context)

    def _queue(self, queue, context):
        default = default_queue_name()
        name = default if queue is None else queue
        return resolve_queue(connection_for(context), name, create_default=("", default))

    # -- one job ----------------------------------------------------------------

    def queueJob(self, func, context, *args, **kwargs):
        return self.queueJobInQueueWithDelay(
            None, None, None, None, func, context, *args, **kwargs)

    def queueJobWithDelay(self, begin_by, begin_after, func, context, *args, **kwargs):
        return self.queueJobInQueueWithDelay(
            begin_by, begin_after, None, None, func, context, *args, **kwargs)

    def queueJobInQueue(self, queue, quota_names, func, context, *args, **kwargs):
        return self.queueJobInQueueWithDelay(
            None, None, queue, quota_names, func, context, *args, **kwargs)

    def queueJobInQueueWithDelay(self, begin_by, begin_after, queue, quota_names,
                                 func, context, *args, **kwargs):
        return self.put(self.wrapJob((func, context, args, kwargs)), queue=queue,
                        quota_names=quota_names, begin_after=begin_after,
                        begin_by=begin_by, context=context)

    # -- several jobs -----------------------------------------------------------

    def queueSerialJobs(self, *job_infos):
        return self.queueSerialJobsInQueue(None, None, *job_infos)

    def queueParallelJobs(self, *job_infos):
        return self.queueParallelJobsInQueue(None, None, *job_infos)

    def queueSerialJobsInQueue(self, queue, quota_names, *job_infos):
        return self.put_composite(composite.serial, job_infos, queue=queue,
                                  quota_names=quota_names)

    def queueParallelJobsInQueue(self, queue, quota_names, *job_infos):
        return self.put_composite(composite.parallel, job_infos, queue=queue,
                                  quota_names=quota_names)

    def makeJob(self, func, context, *args, **kwargs):
        return makeJob(func, context, *args, **kwargs)

    def wrapJob(self, job_info):
        """A :class:`ContextJob` for the job info, with the callback that
        notifies ``IJobSuccess`` / ``IJobFailure``."""
        func, context, args, kwargs = job_info
        job = ContextJob(func, context, *args, **kwargs)
        job.add_callback(EventCallback())
        return job

    # -- the spelling the api module uses ----------------------------------------

    def put(self, job, queue=None, quota_names=None, begin_after=None, begin_by=None,
            retry_policy=None, context=None, priority=None, unique_key=None,
            unique_while=None, on_duplicate="return", timeout=None):
        """Put ``job`` in ``queue`` (see the interface for the arguments).

        A job sharing a quota of size one with a job this transaction put
        before starts after it (see :mod:`.ordering`).
        """
        _check_job(job)
        target = self._queue(queue, context)
        return put_in_order(
            target,
            job,
            begin_after=begin_after,
            begin_by=begin_by,
            quota_names=self._quota_names(target, quota_names),
            retry_policy_factory=retry_policy or default_retry_policy(),
            priority=priority,
            unique_key=unique_key,
            unique_while=unique_while,
            on_duplicate=on_duplicate,
            timeout=timeout,
        )

    def put_many(self, jobs, queue=None, quota_names=None, begin_after=None, begin_by=None,
                 retry_policy=None, context=None, priority=None, timeout=None):
        """Put each of ``jobs`` in ``queue`` as :meth:`put` would, with the
        same options looked up once; return the list of the jobs."""
        jobs = list(jobs)
        for job in jobs:
            _check_job(job)
        target = self._queue(queue, context)
        names = self._quota_names(target, quota_names)
        policy = retry_policy or default_retry_policy()
        return [put_in_order(target, job, begin_after=begin_after, begin_by=begin_by,
                             quota_names=names, retry_policy_factory=policy,
                             priority=priority, timeout=timeout)
                for job in jobs]

    def put_composite(self, combine, job_infos, queue=None, quota_names=None,
                      begin_after=None, begin_by=None, retry_policy=None):
        """Queue ``combine(*jobs)`` (``serial`` or ``parallel``) of the jobs
        for ``job_infos``; quotas and retry policy apply to each inner job.

        As in plone.app.async, the batch notifies ``IJobSuccess`` (or
        ``IJobFailure``) once, when it has finished, in its first job's
        context (``event.object``: the tuple of its jobs); its jobs notify
        nothing.  An empty batch finishes at once with ``()``.
        """
        jobs = [ContextJob(func, context, *args, **kwargs)
                for func, context, args, kwargs in job_infos]
        target = self._queue(queue, job_infos[0][1] if jobs else None)
        names = self._quota_names(target, quota_names)
        target.quotas.check_names(names)
        policy = retry_policy or default_retry_policy()
        retry.check_factory(policy)  # the jobs are put later, by the batch, in a worker
        for job in jobs:
            job.quota_names = names
            if policy is not None:
                job.retry_policy_factory = policy
        batch = combine(*jobs)
        batch.add_callback(EventCallback(
            jobs[0].execution if jobs else ExecutionContext.capture(getSite())))
        # The composite itself only queues the inner jobs and waits for
        # them: it counts against no quota, which it would hold meanwhile.
        return target.put(batch, begin_after=begin_after, begin_by=begin_by)

    @staticmethod
    def _quota_names(queue, quota_names):
        if quota_names is None:
            return (DEFAULT_QUOTA,) if DEFAULT_QUOTA in queue.quotas else ()
        if isinstance(quota_names, str):
            return (quota_names,)
        return tuple(quota_names)
