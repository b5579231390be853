"""The events of the Plone integration: a job queued through the service
has finished (``JobSuccess``, ``JobFailure``); a worker's dispatcher is
ready in a queue (``QueueReady``)."""
from zope.event import notify
from zope.interface import implementer
from zope.interface.interfaces import ObjectEvent

from plone.app.asyncjobs.interfaces import IJobFailure
from plone.app.asyncjobs.interfaces import IJobSuccess
from plone.app.asyncjobs.interfaces import IQueueReady


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


@implementer(IQueueReady)
class QueueReady(ObjectEvent):
    """``object`` is the queue a dispatcher just became active in."""


def notify_queue_ready(event):
    """Subscriber of the engine's ``IDispatcherActivated``: the event's
    object is the dispatcher's record in a queue."""
    notify(QueueReady(event.object.queue))
