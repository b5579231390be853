"""Jobs the engine makes for itself, marked apart from the jobs of users.

The engine and the Plone service make jobs of their own: the callback
that notifies a service job's events, the callbacks that move a
composite job or an ordered series on, the job that resumes the
callbacks of a cancelled or interrupted job.  They carry
:class:`~.interfaces.IInternalJob`, so that what shows jobs to people
(the console, the REST API) can leave them out, and so that a history
does not keep them (:class:`~.history.CompletedJobs`).
"""
from zope.interface import alsoProvides

from plone.app.asyncjobs.engine.interfaces import IInternalJob
from plone.app.asyncjobs.engine.interfaces import IWaitingStep


def internal(job):
    """Mark ``job`` as the engine's own (see the module doc); return it."""
    alsoProvides(job, IInternalJob)
    return job


def waiting_step(job):
    """Mark ``job``, a callback, as the way another job waits for the job
    it is a callback of (see :class:`~.interfaces.IWaitingStep`); it is
    internal too.  Return it."""
    alsoProvides(job, IWaitingStep)
    return job


def waited_for(job):
    """Whether another job waits for ``job`` through one of its callbacks."""
    return any(IWaitingStep.providedBy(callback) for callback in job.callbacks)


def is_internal(job):
    """Whether ``job`` is one the engine or the service made for itself."""
    return IInternalJob.providedBy(job)
