"""Interfaces of the engine's persistent objects and events.

They let Zope code adapt and subscribe without importing classes; the
engine itself uses them to recognise where a job is.
"""
from zope.interface import Attribute
from zope.interface import Interface
from zope.interface.interfaces import IObjectEvent


class IJob(Interface):
    """A persistent call: a callable with arguments, its status and result."""

    status = Attribute("One of the strings in plone.app.asyncjobs.engine.status")
    result = Attribute("The return value, a Failure, or None while unfinished")


class IInternalJob(IJob):
    """A job the engine or the Plone service makes for its own bookkeeping
    (a callback that notifies events or queues the next step, a job that
    resumes another job's callbacks), not for anyone's work.

    Consoles do not show or count these jobs, and histories do not keep
    them once they completed; mark one with :func:`.internal.internal`.
    """


class IWaitingStep(IInternalJob):
    """An internal callback through which another job waits for the job
    it is a callback of (a composite's step, the job that returned it, the
    next of an ordered series): that job must complete, not vanish from
    its queue.  Mark one with :func:`.internal.waiting_step`.
    """


class ICallbackChooser(Interface):
    """A callback that becomes one of two jobs once its parent job's result
    is known: one for a success, one for a failure (see
    :meth:`.job.Job.add_callbacks`)."""

    job = Attribute("The chosen job; None until the result is known")

    def choose(result):
        """Return the job to call with ``result``, choosing it the first time."""


class IQueue(Interface):
    """An ordered collection of pending jobs that agents claim from."""


class IQueues(Interface):
    """The mapping of queue names to queues stored at the database root."""


class IAgent(Interface):
    """Claims jobs for one dispatcher in one queue and holds them while they run."""


class IDispatcherAgents(Interface):
    """A dispatcher's record in one queue: liveness and its agents."""


class IRetryPolicy(Interface):
    """Decides what happens after a job error, a commit error or an interruption.

    Each decision returns ``True`` (retry now), ``False`` (give up), or a
    ``datetime`` / ``timedelta`` (run again at or after that time).
    """

    def job_error(failure, data_cache):
        """The callable raised; ``failure`` describes it."""

    def commit_error(failure, data_cache):
        """Committing the job's outcome failed."""

    def interrupted():
        """The worker running the job died."""

    def update_data(data_cache):
        """Keep what should survive this run before the result is committed."""


class IDispatcherEvent(IObjectEvent):
    """An event about a dispatcher's record in a queue (``object``)."""


class IDispatcherRegistered(IDispatcherEvent):
    """A dispatcher registered itself in a queue for the first time."""


class IDispatcherUnregistered(IDispatcherEvent):
    """A dispatcher's record was removed from a queue."""


class IDispatcherActivated(IDispatcherEvent):
    """A dispatcher became active in a queue and may claim jobs."""


class IDispatcherDeactivated(IDispatcherEvent):
    """A dispatcher was deactivated (stopped, or found dead by a sibling)."""


class IDispatcherReactivated(IDispatcherEvent):
    """A dispatcher found itself wrongly deactivated and activated again."""


class IJobCompleted(IObjectEvent):
    """A job reached COMPLETED (``object``); fired inside that transaction."""
