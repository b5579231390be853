"""Interfaces of the Plone integration.

``IAsyncService`` keeps the method names and argument order of
``plone.app.async``'s utility, so code written for it ports by changing
one import::

    from plone.app.asyncjobs.interfaces import IAsyncService
    from zope.component import getUtility

    getUtility(IAsyncService).queueJob(func, context, *args, **kwargs)

New code should prefer :mod:`plone.app.asyncjobs.api`, which goes through
this utility too: a site that registers its own ``IAsyncService``
changes both.

The job statuses are importable from here under zc.async's names
(``from plone.app.asyncjobs.interfaces import COMPLETED``, where zc.async
code imported them from ``zc.async.interfaces``).  Their values are
``'pending'``, ``'completed'``... rather than zc.async's
``'pending-status'``, ``'completed-status'``...: compare with the
constants, never with literal strings (see
``plone.app.asyncjobs.engine.status.ZC_ASYNC_VALUES``).
"""
from zope import schema
from zope.interface import Attribute
from zope.interface import Interface
from zope.interface.interfaces import IObjectEvent
from zope.publisher.interfaces.browser import IDefaultBrowserLayer

from plone.app.asyncjobs.engine.interfaces import IJob
from plone.app.asyncjobs.engine.status import ACTIVE  # noqa: F401 (zc.async's names)
from plone.app.asyncjobs.engine.status import ASSIGNED  # noqa: F401
from plone.app.asyncjobs.engine.status import CALLBACKS  # noqa: F401
from plone.app.asyncjobs.engine.status import COMPLETED  # noqa: F401
from plone.app.asyncjobs.engine.status import NEW  # noqa: F401
from plone.app.asyncjobs.engine.status import PENDING  # noqa: F401


class IAsyncJobsLayer(IDefaultBrowserLayer):
    """Browser layer, active in sites where the add-on is installed."""


class IContextJob(IJob):
    """A job that calls ``func(context, *args, **kwargs)`` in a worker as
    the queuing user, in the queuing site, with a request that produces
    the URLs of the queuing request."""

    func = Attribute("The function called with the context first")
    execution = Attribute(
        "What was recorded at queue time (an ExecutionContext): paths of "
        "the site, the context and the user folder, the context's UID, the "
        "user id, the request's URL data"
    )


class IJobEvent(IObjectEvent):
    """A job queued through the service or the api module has finished.

    Notified in the worker, in a transaction of its own right after the
    job's, with the site, the user and the request of the job restored.
    """

    job = Attribute("The job (an IContextJob)")
    context = Attribute(
        "The job's context, or None when it could not be found any more"
    )


class IJobSuccess(IJobEvent):
    """The job returned; ``object`` is what it returned."""


class IJobFailure(IJobEvent):
    """The job failed; ``object`` is the failure (a Twisted ``Failure``,
    with ``check()``, ``getErrorMessage()`` and ``getTraceback()``)."""


class IQueueReady(IObjectEvent):
    """A worker's dispatcher became active in a queue (``object``).

    Notified in the worker, in the transaction that activates the
    dispatcher, once per queue at each start (as plone.app.async did):
    subscribers may configure the queue, say create quotas.
    """


class IAsyncService(Interface):
    """Queue jobs that run in a worker, in the context they were queued in.

    ``func`` must be importable by name (a module-level function, say);
    it is called in the worker as ``func(context, *args, **kwargs)``.
    Every ``queue*`` method adds the job in the current transaction, so
    the job exists only once that transaction commits.  They return the
    job (a composite job for the serial and parallel variants).

    ``queue`` is a queue or a queue name; ``None`` means the site's
    default queue.  ``quota_names`` is a sequence of quota names; ``None``
    means ``('default',)`` when the queue has a quota named ``default``
    (as ``plone.app.async`` did), else no quota; ``()`` means no quota.
    ``begin_after`` is a timezone-aware datetime, ``begin_by`` a
    timedelta (``None``: no deadline).
    """

    def getQueues(context=None):
        """Return the queues container (a mapping of names to queues) of
        the database ``context`` (default: the current site) is stored in,
        creating it if no worker ever did.  A context reached through no
        database raises ``ValueError``."""

    def getQueue(queue=None, context=None):
        """Return the queue named ``queue`` (``None``: the site's default
        queue); unknown names raise ``LookupError``."""

    def queueJob(func, context, *args, **kwargs):
        """Queue a job in the default queue."""

    def queueJobWithDelay(begin_by, begin_after, func, context, *args, **kwargs):
        """Queue a job in the default queue, to start after ``begin_after``."""

    def queueJobInQueue(queue, quota_names, func, context, *args, **kwargs):
        """Queue a job in ``queue``, counting against ``quota_names``."""

    def queueJobInQueueWithDelay(begin_by, begin_after, queue, quota_names,
                                 func, context, *args, **kwargs):
        """Both of the above; every other ``queueJob*`` method calls it."""

    def queueSerialJobs(*job_infos):
        """Queue jobs that run one after the other.

        Each job info is what :meth:`makeJob` returns.  The composite job's
        result is the tuple of the inner jobs.  The composite notifies
        ``IJobSuccess`` or ``IJobFailure`` once, when it has finished (with
        that tuple, in its first inner job's context); its inner jobs
        notify nothing, as in plone.app.async.
        """

    def queueParallelJobs(*job_infos):
        """Queue jobs that may run at the same time (as far as agents and
        quotas allow); the composite job's result is the tuple of the
        inner jobs."""

    def queueSerialJobsInQueue(queue, quota_names, *job_infos):
        """Serial jobs in ``queue``; each inner job counts against
        ``quota_names``."""

    def queueParallelJobsInQueue(queue, quota_names, *job_infos):
        """Parallel jobs in ``queue``; each inner job counts against
        ``quota_names``."""

    def makeJob(func, context, *args, **kwargs):
        """Return the job info ``(func, context, args, kwargs)``."""

    def wrapJob(job_info):
        """Return the job (an ``IContextJob``, not yet queued) for a job
        info, with the callback that notifies ``IJobSuccess`` or
        ``IJobFailure``."""

    def put(job, queue=None, quota_names=None, begin_after=None, begin_by=None,
            retry_policy=None, context=None, priority=None, unique_key=None,
            unique_while=None, on_duplicate="return", timeout=None):
        """Put ``job`` (from :meth:`wrapJob`) in ``queue`` and return it.

        ``retry_policy`` is a policy name or factory; ``None`` is the
        site's default policy.  ``context`` finds the database when
        ``queue`` is a name.  ``priority``, ``unique_key``,
        ``unique_while`` and ``on_duplicate`` are those of the engine's
        ``Queue.put``: with a unique key that a job of the queue holds,
        that job is returned (or ``DuplicateJobError`` raised).  ``timeout``
        (seconds) limits how long the job may run, like ``Queue.put``'s
        (``None``: the queue's ``default_timeout``).  The ``queueJob*`` methods and
        ``api.queue_job`` end here.
        """

    def put_many(jobs, queue=None, quota_names=None, begin_after=None, begin_by=None,
                 retry_policy=None, context=None, priority=None, timeout=None):
        """Put each of ``jobs`` (from :meth:`wrapJob`) in ``queue`` with the
        same options, as :meth:`put` would, and return the list of them:
        the way to queue thousands of jobs in one transaction.  An error
        in the options or in a job raises (and the transaction should be
        aborted, as a request does).  ``api.queue_jobs`` ends here.
        """

    def put_composite(combine, job_infos, queue=None, quota_names=None,
                      begin_after=None, begin_by=None, retry_policy=None):
        """Queue ``combine(*jobs)`` of the jobs for ``job_infos``
        (``combine`` is the engine's ``composite.serial`` or
        ``composite.parallel``) and return it.  Quotas and retry policy
        apply to each inner job; ``begin_after`` and ``begin_by`` to the
        composite, which notifies the events once (see
        :meth:`queueSerialJobs`).  The ``queue*Jobs*`` methods and
        ``api.queue_serial_jobs`` / ``api.queue_parallel_jobs`` end here.
        """


class IAsyncJobsSettings(Interface):
    """Site settings, stored in the registry under ``plone.app.asyncjobs``."""

    default_queue = schema.TextLine(
        title="Default queue",
        description=(
            "The queue jobs go to when the code queuing them names none. "
            "Empty means the default queue every worker serves."
        ),
        default="",
        required=False,
        missing_value="",
    )

    default_retry_policy = schema.TextLine(
        title="Default retry policy",
        description=(
            "Name of the retry policy of jobs queued without one: never, "
            "default, forever, delayed, or a name an add-on registered. "
            "Empty means the engine's default (retry conflicts a few times)."
        ),
        default="",
        required=False,
        missing_value="",
    )

    saved_schedules = schema.Text(
        title="Saved schedules",
        description=(
            "The recurring jobs saved in the site's schedules page, as JSON "
            "(see plone.app.asyncjobs.schedules.saved). Edit them there: "
            "a change made here runs nothing until saved there again."
        ),
        default="{}",
        required=False,
        missing_value="{}",
    )


class IWorkerRole(Interface):
    """Registered by ``single_db.zcml`` or ``multi_db.zcml``: this process
    runs a dispatcher once the Zope server has started."""

    queues_database = Attribute(
        "Name of the database holding the queues (mounted in zope.conf), "
        "or None for the main database"
    )
