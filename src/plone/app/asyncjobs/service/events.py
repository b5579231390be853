"""The events notified when a job queued through the service has finished."""
from zope.interface import implementer
from zope.interface.interfaces import ObjectEvent

from plone.app.asyncjobs.interfaces import IJobFailure
from plone.app.asyncjobs.interfaces import IJobSuccess


class JobEvent(ObjectEvent):
    """``object`` is the outcome; ``job`` the job; ``context`` its context."""

    def __init__(self, outcome, job, context=None):
        super().__init__(outcome)
        self.job = job
        self.context = context


@implementer(IJobSuccess)
class JobSuccess(JobEvent):
    """``object`` is what the job returned."""


@implementer(IJobFailure)
class JobFailure(JobEvent):
    """``object`` is the job's failure."""
