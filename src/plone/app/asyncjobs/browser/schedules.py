"""``@@asyncjobs-schedules``: the site's recurring jobs (see docs/schedules.rst).

GET lists the schedules in the page's scope with their next run and their
latest runs (links to the jobs).  A POST with the CSRF token and a button
``form.buttons.pause``, ``form.buttons.resume`` or ``form.buttons.run``
(and the schedule's ``name``) does that action and redirects back here
with a status message.  A POST without the token answers 403, as does one
by a user who may not do database-wide actions
(:func:`..access.may_manage_workers`); a schedule that is not in the scope,
or a "run now" the user may not make run as the schedule's user
(:func:`..access.check_run_as`), gives an error status message.
"""
from plone.protect import CheckAuthenticator
from Products.Five.browser.pagetemplatefile import ViewPageTemplateFile
from Products.statusmessages.interfaces import IStatusMessage
from zExceptions import Forbidden

from plone.app.asyncjobs import access
from plone.app.asyncjobs.browser.controlpanel import PanelView
from plone.app.asyncjobs.browser.controlpanel import _
from plone.app.asyncjobs.browser.controlpanel import without_tracebacks
from plone.app.asyncjobs.schedules import console


def _pause(view, record):
    console.pause(record, view.context, view.actor)
    return _("msg_schedule_paused", default="Schedule ${name} was paused.",
             mapping={"name": record.name})


def _resume(view, record):
    console.resume(record, view.context, view.actor)
    return _("msg_schedule_resumed", default="Schedule ${name} was resumed.",
             mapping={"name": record.name})


def _run(view, record):
    job = console.run_now(view.queues, record, view.context, view.actor)
    return _("msg_schedule_run", default="Schedule ${name} was queued now as job ${id}.",
             mapping={"name": record.name, "id": console.job_id(job)})


ACTIONS = {"pause": _pause, "resume": _resume, "run": _run}


class SchedulesView(PanelView):
    """The schedules, and their pause, resume and "run now" buttons."""

    template = ViewPageTemplateFile("templates/schedules.pt")

    @without_tracebacks
    def __call__(self):
        self.scope  # noqa: B018 -- refuses a database-wide scope early
        if self.request.method == "POST":
            CheckAuthenticator(self.request)
            return self.perform()
        return self.template()

    def perform(self):
        names = [name for name in ACTIONS if f"form.buttons.{name}" in self.request.form]
        if not self.may_manage_workers:
            raise Forbidden(f"only a user with {access.MANAGE_WORKERS!r} (in a database with "
                            "several sites: on the Zope root) may do this")
        messages = IStatusMessage(self.request)
        try:
            if len(names) != 1:
                raise LookupError("ask for one of pause, resume, run")
            record = console.get_record(self.queues, self.request.form.get("name"), self.scope)
            messages.add(ACTIONS[names[0]](self, record), type="info")
        except (LookupError, access.RunAsRefused) as error:
            messages.add(_("msg_action_failed", default="Nothing was done: ${error}",
                           mapping={"error": str(error)}), type="error")
        self.request.response.redirect(self.schedules_url)
        return ""

    @property
    def schedules_url(self):
        return self.page_url("asyncjobs-schedules")

    def schedules(self):
        """:func:`..schedules.console.list_schedules` of the page's scope."""
        return console.list_schedules(self.queues, self.scope)
