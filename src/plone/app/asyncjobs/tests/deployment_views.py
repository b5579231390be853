"""Views and the job of the end-to-end deployment test (deployment.zcml)."""
import json
import os

from plone import api as plone_api
from plone.protect.interfaces import IDisableCSRFProtection
from Products.Five import BrowserView
from ZODB.utils import p64
from ZODB.utils import u64
from zope.interface import alsoProvides

from plone.app.asyncjobs import api
from plone.app.asyncjobs.engine.instanceuuid import get_uuid
from plone.app.asyncjobs.service.queues import queues_connection


def create_document(site, id, title):
    """The job: create a document; tell where and by whom it ran."""
    doc = plone_api.content.create(container=site, type="Document", id=id, title=title)
    return {
        "site_url": site.absolute_url(),
        "document_url": doc.absolute_url(),
        "creators": list(doc.listCreators()),
        "user": plone_api.user.get_current().getId(),
        "roles": sorted(plone_api.user.get_roles(obj=doc)),
        "pid": os.getpid(),
        "uuid": str(get_uuid()),
    }


def numbered(site, number):
    """The job of the Plone drain benchmark (bench/plone_drain.py): nothing
    but the site set-up of a job and the callback notifying its outcome."""
    return number


class QueueCreateDocument(BrowserView):
    def __call__(self):
        alsoProvides(self.request, IDisableCSRFProtection)
        doc_id = self.request.form["id"]
        job = api.queue_job(create_document, self.context, doc_id, f"Document {doc_id}")
        self.request.response.setHeader("Content-Type", "application/json")
        return json.dumps({"oid": u64(job._p_oid), "pid": os.getpid(),
                           "database": job._p_jar.db().database_name})


class QueueNumbered(BrowserView):
    """Queue ``count`` :func:`numbered` jobs in one transaction, due in
    ``delay`` seconds."""

    def __call__(self):
        alsoProvides(self.request, IDisableCSRFProtection)
        count = int(self.request.form["count"])
        delay = float(self.request.form.get("delay", 0))
        queued = api.queue_jobs([api.make_job(numbered, self.context, number)
                                 for number in range(count)], delay=delay or None)
        self.request.response.setHeader("Content-Type", "application/json")
        return json.dumps({"count": len(queued)})


class JobState(BrowserView):
    def __call__(self):
        connection = queues_connection(self.context._p_jar)
        job = connection.get(p64(int(self.request.form["oid"])))
        result = job.result
        self.request.response.setHeader("Content-Type", "application/json")
        return json.dumps({
            "status": job.status,
            "failed": api.is_failure(result),
            "result": api.traceback_text(result) if api.is_failure(result) else result,
        }, default=repr)
