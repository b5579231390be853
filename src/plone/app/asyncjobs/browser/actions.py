"""``@@asyncjobs-action``: confirm, then do, what an administrator asks.

The pages link (or send a GET form) to ``@@asyncjobs-action?action=<name>&...``,
which shows a confirmation page: what will happen, and a POST form with
the CSRF token (``_authenticator``) whose submit button is named
``form.buttons.<name>``.  The POST checks the token (``Forbidden``, status
403, without it), calls the :mod:`.inspection` action with the member id
as the actor (which logs it), adds a status message and redirects.  Bad
input (an unknown job, a status that does not allow the action, a number
that is not one) gives an error status message and a redirect instead.

Actions and their parameters: ``cancel``, ``retry``, ``remove`` (``id``);
``purge`` (``days``); ``resize`` (``dispatcher``, ``queue``, ``agent``,
``size``); ``pause`` and ``resume`` (``dispatcher``).

A job action finds the job in the page's scope only (another site's job is
"not there").  The database-wide actions (purge, resize, pause, resume)
answer 403, their confirmation page too, to a user who may not do them
(:func:`..access.may_manage_workers`).  A retry that would run with roles
the user does not have (:func:`..access.check_run_as`) is refused with an
error status message.
"""
from dataclasses import dataclass

from plone.protect import CheckAuthenticator
from Products.Five.browser.pagetemplatefile import ViewPageTemplateFile
from Products.statusmessages.interfaces import IStatusMessage
from zope.i18n import translate
from zope.i18nmessageid import Message

from zExceptions import Forbidden

from plone.app.asyncjobs import access
from plone.app.asyncjobs import inspection
from plone.app.asyncjobs.browser.controlpanel import PanelView
from plone.app.asyncjobs.browser.controlpanel import without_tracebacks
from plone.app.asyncjobs.browser.controlpanel import _
from plone.app.asyncjobs.browser.controlpanel import plural
from plone.app.asyncjobs.engine import listing
from plone.app.asyncjobs.engine.exceptions import BadStatusError


#: What an action may fail with; the message goes to the administrator.
ACTION_ERRORS = (inspection.QueryError, LookupError, BadStatusError, access.RunAsRefused)


def _job(view, params):
    return inspection.get_job(view.queues, params["id"], view.scope)


def cancel(view, params):
    job = _job(view, params)
    running = inspection.is_running(job)
    inspection.cancel(job, view.actor)
    if running:
        message = _("msg_job_cancel_requested",
                    default="Job ${id} was asked to stop; it stops if it checks for it.",
                    mapping=params)
    else:
        message = _("msg_job_cancelled", default="Job ${id} was cancelled.", mapping=params)
    return message, view.job_url(params["id"])


def retry(view, params):
    new_id = inspection.job_id(inspection.retry(_job(view, params), view.actor, view.context))
    return (_("msg_job_retried", default="Job ${id} was queued again as job ${new}.",
              mapping={"id": params["id"], "new": new_id}),
            view.job_url(new_id))


def remove(view, params):
    job = _job(view, params)
    state = listing.list_of(job)
    inspection.remove(job, view.actor)
    return (_("msg_job_removed", default="Job ${id} was removed.", mapping=params),
            view.list_url(state))


def purge(view, params):
    count = inspection.purge(view.queues, params["days"], view.actor)
    message = plural(
        count,
        _("msg_job_purged", default="${count} job that finished more than ${age} ago "
                                    "was removed."),
        _("msg_jobs_purged", default="${count} jobs that finished more than ${age} ago "
                                     "were removed."))
    return (Message(message, mapping={"count": count, "age": view.age(params["days"])}),
            view.overview_url)


def resize(view, params):
    inspection.set_agent_size(view.queues, params["dispatcher"], params["queue"],
                              params["agent"], params["size"], view.actor)
    return (_("msg_agent_resized",
              default="Agent ${agent} of dispatcher ${dispatcher} now has size ${size}: "
                      "the most jobs it runs at a time (from the worker's next poll).",
              mapping=params),
            view.overview_url)


def pause(view, params):
    inspection.pause(view.queues, params["dispatcher"], view.actor)
    return (_("msg_dispatcher_paused",
              default="The agents of dispatcher ${dispatcher} start no new jobs now; "
                      "the jobs they run finish.", mapping=params),
            view.overview_url)


def resume(view, params):
    inspection.resume(view.queues, params["dispatcher"], view.actor)
    return (_("msg_dispatcher_resumed",
              default="The agents of dispatcher ${dispatcher} start jobs again.",
              mapping=params),
            view.overview_url)


@dataclass(frozen=True)
class Action:
    """An action: its parameters, the words of its confirmation page, and
    ``run(view, params)``, which returns the status message and the URL to
    go to; ``database_wide`` if it affects every site of the database."""

    fields: tuple
    title: Message
    question: Message
    button: Message
    button_class: str
    run: object
    database_wide: bool = False


JOB = ("id",)
DISPATCHER = ("dispatcher",)

ACTIONS = {
    "cancel": Action(
        JOB, _("title_cancel", default="Cancel job ${id}?"),
        _("confirm_cancel", default="A pending job will not run; a running job is asked "
                                    "to stop, which it does only if it checks for the "
                                    "request.  A cancelled job is kept with the failed "
                                    "jobs, with your name as the reason."),
        _("button_cancel", default="Cancel the job"), "btn-danger", cancel),
    "retry": Action(
        JOB, _("title_retry", default="Retry job ${id}?"),
        _("confirm_retry", default="A copy of the job is queued in the same queue, to run "
                                   "again as the same user in the same context.  This "
                                   "job stays in the history, linked to its copy."),
        _("button_retry", default="Retry the job"), "btn-primary", retry),
    "remove": Action(
        JOB, _("title_remove", default="Remove job ${id}?"),
        _("confirm_remove", default="The job and its result are removed from the "
                                    "history.  This cannot be undone."),
        _("button_remove", default="Remove the job"), "btn-danger", remove),
    "purge": Action(
        ("days",), _("title_purge", default="Purge finished jobs?"),
        _("confirm_purge", default="Every job that finished more than ${age} ago is "
                                   "removed from the history of every queue.  This cannot "
                                   "be undone."),
        _("button_purge", default="Purge"), "btn-danger", purge, database_wide=True),
    "resize": Action(
        DISPATCHER + ("queue", "agent", "size"),
        _("title_resize", default="Change the size of agent ${agent}?"),
        _("confirm_resize", default="Agent ${agent} of dispatcher ${dispatcher} in queue "
                                    "${queue_label} will have size ${size}: the most jobs "
                                    "it runs at a time.  With size 0 it starts none."),
        _("button_resize", default="Change the size"), "btn-primary", resize,
        database_wide=True),
    "pause": Action(
        DISPATCHER, _("title_pause", default="Pause dispatcher ${dispatcher}?"),
        _("confirm_pause", default="Its agents stop starting jobs in every queue; the jobs "
                                   "they run now finish.  The pause lasts, across restarts "
                                   "too, until you resume them."),
        _("button_pause", default="Pause"), "btn-warning", pause, database_wide=True),
    "resume": Action(
        DISPATCHER, _("title_resume", default="Resume dispatcher ${dispatcher}?"),
        _("confirm_resume", default="Its agents start jobs again."),
        _("button_resume", default="Resume"), "btn-primary", resume,
        database_wide=True),
}


class ActionView(PanelView):
    """GET: the confirmation page of an action; POST: the action."""

    template = ViewPageTemplateFile("templates/confirm.pt")
    job = None

    @without_tracebacks
    def __call__(self):
        self.scope  # noqa: B018 -- refuses a database-wide scope early
        if self.request.method == "POST":
            CheckAuthenticator(self.request)
            names = [name for name in ACTIONS if f"form.buttons.{name}" in self.request.form]
            return self.perform(names[0] if len(names) == 1 else None)
        return self.confirm(self.request.form.get("action"))

    def collect(self, name):
        """The action ``name`` and its parameters (strings) from the form.

        Raises ``QueryError`` for an unknown action or a missing parameter.
        """
        action = ACTIONS.get(name) if isinstance(name, str) else None
        if action is None:
            raise inspection.QueryError("action", f"must be one of {', '.join(ACTIONS)}")
        if action.database_wide and not self.may_manage_workers:
            raise Forbidden(f"{name}: only a user with {access.MANAGE_WORKERS!r} (in a "
                            "database with several sites: on the Zope root) may do this")
        params = {}
        for field in action.fields:
            value = self.request.form.get(field)
            if not isinstance(value, str) or (not value and field != "queue"):
                raise inspection.QueryError(field, "missing")
            params[field] = value
        return action, params

    def confirm(self, name):
        try:
            self.action, self.params = self.collect(name)
            self.name = name
            if "id" in self.params:
                job = _job(self, self.params)
                if name == "retry":
                    access.check_run_as(job, self.context)
                self.job = inspection.describe(job)
        except ACTION_ERRORS as error:
            return self.fail(error)
        return self.template()

    def perform(self, name):
        try:
            action, params = self.collect(name)
            message, url = action.run(self, params)
        except ACTION_ERRORS as error:
            return self.fail(error)
        IStatusMessage(self.request).add(message, type="info")
        self.request.response.redirect(url)
        return ""

    def fail(self, error):
        """Say why nothing was done; go back to where the action was asked
        from (the overview if that was a job that is not there)."""
        IStatusMessage(self.request).add(
            _("msg_action_failed", default="Nothing was done: ${error}",
              mapping={"error": str(error)}), type="error")
        url = self.overview_url if isinstance(error, LookupError) else self.back_url()
        self.request.response.redirect(url)
        return ""

    def back_url(self):
        """The page the action was asked from: the job's, or the overview."""
        job_id = self.request.form.get("id")
        if isinstance(job_id, str) and job_id:
            return self.job_url(job_id)
        return self.overview_url

    def words(self, message):
        """``message`` of the current action, filled in with its parameters."""
        mapping = dict(self.params)
        if "days" in mapping:
            mapping["age"] = self.age(mapping["days"])
        if "queue" in mapping:
            mapping["queue_label"] = translate(self.queue_label(mapping["queue"]),
                                               context=self.request)
        return Message(message, mapping=mapping)

    def age(self, days):
        """``1 day`` or ``3 days`` (``days`` as the form gave it), translated."""
        message = plural(days, _("age_day", default="${days} day"),
                         _("age_days", default="${days} days"))
        return translate(Message(message, mapping={"days": days}), context=self.request)

    @property
    def page_title(self):
        return self.words(self.action.title)

    @property
    def form_url(self):
        return self.page_url("asyncjobs-action")
