"""Views that queue jobs in real requests (loaded by testing.zcml)."""
from plone.protect.interfaces import IDisableCSRFProtection
from Products.Five import BrowserView
from zope.interface import alsoProvides
from ZODB.POSException import ConflictError
from ZODB.utils import u64

from plone.app.asyncjobs import api
from plone.app.asyncjobs.tests import jobs


class QueueDescribe(BrowserView):
    """Queue ``describe`` on the context; answer the job's oid."""

    def __call__(self):
        alsoProvides(self.request, IDisableCSRFProtection)
        job = api.queue_job(jobs.describe, self.context)
        return f"{u64(job._p_oid)} {self.context.absolute_url()}"


class QueueThenFail(BrowserView):
    """Queue ``mark`` on the context, then fail: the request is aborted."""

    def __call__(self):
        alsoProvides(self.request, IDisableCSRFProtection)
        api.queue_job(jobs.mark, self.context, "from an aborted request")
        raise ValueError("this request fails after queuing a job")


class QueueThenConflict(BrowserView):
    """Queue ``mark`` on the context; the first attempt of the request then
    fails with a ConflictError, which makes the publisher retry it."""

    attempts = 0

    def __call__(self):
        alsoProvides(self.request, IDisableCSRFProtection)
        QueueThenConflict.attempts += 1
        job = api.queue_job(jobs.mark, self.context, f"attempt {QueueThenConflict.attempts}")
        if QueueThenConflict.attempts == 1:
            raise ConflictError("a conflict on the first attempt")
        return str(u64(job._p_oid))
