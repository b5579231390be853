"""``@@asyncjobs-job?id=<id>``: everything about one job.

The facts come from :func:`.inspection.describe` with ``detail``; the page
links to the confirmation pages of the actions the job allows: cancel a
pending job (or ask a running one to stop, until it was asked: then the
page says so), remove a finished one, and retry a finished one (succeeded,
failed or cancelled) when :func:`.inspection.retry_refusal` has nothing
against it for the current user.  A cancelled job shows the reason it was
cancelled, not a failure's traceback.  An
unknown id, or that of a job of another site, gives a status message and
status 404.  The traceback of a failed job is shown to Managers only.
"""
from Products.Five.browser.pagetemplatefile import ViewPageTemplateFile
from Products.statusmessages.interfaces import IStatusMessage

from plone.app.asyncjobs import inspection
from plone.app.asyncjobs.browser.controlpanel import PanelView
from plone.app.asyncjobs.browser.controlpanel import without_tracebacks
from plone.app.asyncjobs.browser.controlpanel import _
from plone.app.asyncjobs.engine import listing
from plone.app.asyncjobs.engine import status


class JobView(PanelView):
    """One job, with links to its actions."""

    template = ViewPageTemplateFile("templates/job.pt")
    job = None
    retry_refused = None

    @without_tracebacks
    def __call__(self):
        job_id = self.request.form.get("id")
        try:
            job = inspection.get_job(self.queues, job_id, self.scope)
        except LookupError:
            IStatusMessage(self.request).add(
                _("msg_no_job", default="There is no job ${id}.", mapping={"id": job_id or ""}),
                type="error")
            self.request.response.setStatus(404)
        else:
            self.job = inspection.describe(job, detail=True, traceback=self.show_tracebacks)
            self.retry_refused = inspection.retry_refusal(job, self.context)
        return self.template()

    @property
    def page_title(self):
        if self.job is None:
            return _("title_no_job", default="No such job")
        return _("title_job", default="Job ${id}", mapping={"id": self.job["id"]})

    @property
    def shows_progress(self):
        """Whether the page has a progress section: the job reported
        progress, or may still report some."""
        return self.job["progress"] is not None or self.job["state"] in listing.UNFINISHED

    @property
    def actions(self):
        """``(action, label, button class)`` the job's status allows."""
        job = self.job
        actions = []
        if job["status"] == status.PENDING or (job["status"] == status.ACTIVE
                                               and job["cancel_requested"] is None):
            actions.append(("cancel", _("button_cancel_job", default="Cancel this job…"),
                            "btn-outline-danger"))
        if job["status"] == status.COMPLETED and self.retry_refused is None:
            actions.append(("retry", _("button_retry_job", default="Retry this job…"),
                            "btn-outline-primary"))
        if job["status"] == status.COMPLETED:
            actions.append(("remove", _("button_remove_job", default="Remove this job…"),
                            "btn-outline-danger"))
        return [(action, label, css, self.page_url("asyncjobs-action", action=action,
                                                   id=job["id"]))
                for action, label, css in actions]
