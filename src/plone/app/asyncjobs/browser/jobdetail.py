"""``@@asyncjobs-job?id=<id>``: everything about one job.

The facts come from :func:`.inspection.describe` with ``detail``; the page
links to the confirmation pages of the actions the job's status allows
(cancel a pending job, retry a failed one, remove a finished one).  An
unknown id, or that of a job of another site, gives a status message and
status 404.  The traceback of a failed job is shown to Managers only.
"""
from Products.Five.browser.pagetemplatefile import ViewPageTemplateFile
from Products.statusmessages.interfaces import IStatusMessage

from plone.app.asyncjobs import inspection
from plone.app.asyncjobs.browser.controlpanel import PanelView
from plone.app.asyncjobs.browser.controlpanel import without_tracebacks
from plone.app.asyncjobs.browser.controlpanel import _


class JobView(PanelView):
    """One job, with links to its actions."""

    template = ViewPageTemplateFile("templates/job.pt")
    job = None

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
        return self.template()

    @property
    def actions(self):
        """``(action, label, button class)`` the job's status allows."""
        job = self.job
        actions = []
        if job["status"] == "pending":
            actions.append(("cancel", _("button_cancel_job", default="Cancel this job…"),
                            "btn-outline-danger"))
        if job["state"] == "failed":
            actions.append(("retry", _("button_retry_job", default="Retry this job…"),
                            "btn-outline-primary"))
        if job["status"] == "completed":
            actions.append(("remove", _("button_remove_job", default="Remove this job…"),
                            "btn-outline-danger"))
        return [(action, label, css, self.page_url("asyncjobs-action", action=action,
                                                   id=job["id"]))
                for action, label, css in actions]

    @property
    def call(self):
        """The call with its (shortened) arguments, as Python would show it."""
        job = self.job
        arguments = list(job["args"])
        arguments += [f"{name}={value}" for name, value in job["kwargs"].items()]
        return f"{job['callable']}({', '.join(arguments)})"
