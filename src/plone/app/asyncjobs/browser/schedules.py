"""``@@asyncjobs-schedules``: the site's recurring jobs (see docs/schedules.rst).

GET lists the schedules in the page's scope with their next run and their
latest runs (links to the jobs), and, for users who may save schedules in
the site (:func:`..schedules.saved.may_edit`), a form that adds one, or
with ``?edit=<name>`` changes that saved schedule.

A POST with the CSRF token and a button ``form.buttons.pause``,
``form.buttons.resume``, ``form.buttons.run`` or ``form.buttons.delete``
(and the schedule's ``name``) does that action and redirects back here
with a status message; ``form.buttons.save`` saves the form's schedule
(fields ``saved.<field>``; ``saved.editing`` names the saved schedule it
changes, empty for a new one) as the current user, and shows the form
again with the error of a bad field.  A POST without the token answers
403, as does one by a user who may not do the action
(:func:`..schedules.console.may_act`, :func:`..schedules.saved.may_edit`);
a schedule that is not in the scope, a schedule declared in ZCML or code
for "delete", or a resume or "run now" the user may not make run as the
schedule's user (:func:`..access.check_run_as`), gives an error status
message.
"""
import json

from plone.protect import CheckAuthenticator
from Products.Five.browser.pagetemplatefile import ViewPageTemplateFile
from Products.statusmessages.interfaces import IStatusMessage
from zExceptions import Forbidden

from plone.app.asyncjobs import access
from plone.app.asyncjobs.browser.controlpanel import PanelView
from plone.app.asyncjobs.browser.controlpanel import _
from plone.app.asyncjobs.browser.controlpanel import without_tracebacks
from plone.app.asyncjobs.engine.schedules import MISFIRE_POLICIES
from plone.app.asyncjobs.engine.schedules import ONCE
from plone.app.asyncjobs.inspection import QueryError
from plone.app.asyncjobs.schedules import console
from plone.app.asyncjobs.schedules import saved
from plone.app.asyncjobs.schedules import schedulables


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


def _delete(view, record):
    saved.delete(view.context, view.queues, saved.saved_name(record, view.context))
    return _("msg_schedule_deleted", default="Schedule ${name} was deleted.",
             mapping={"name": record.name})


ACTIONS = {"pause": _pause, "resume": _resume, "run": _run, "delete": _delete}


def _text(form, key, field):
    """The form's text for ``key`` (``""`` if missing); ``QueryError``
    naming ``field`` for a key given twice or typed (``:int``, ``:record``)."""
    value = form.get(key)
    if value is not None and not isinstance(value, str):
        raise QueryError(field, "give it once, as text")
    return value or ""


def _form_values(form):
    """The declaration (see :func:`..schedules.saved.declaration`) of the
    form's ``saved.<field>`` values; ``QueryError`` for bad JSON, a bad
    number or a field given twice."""
    def text(field):
        return _text(form, f"saved.{field}", field).strip()

    data = {"schedulable": text("schedulable"), "cron": text("cron") or None,
            "timezone": text("timezone") or "UTC",
            "arguments": saved.parse_arguments(text("arguments")),
            "queue": text("queue"), "quota_names": text("quota_names").split(),
            "retry_policy": text("retry_policy") or None,
            "misfire": text("misfire") or ONCE, "enabled": bool(form.get("saved.enabled"))}
    if text("interval"):
        try:
            data["interval"] = float(text("interval"))
        except ValueError:
            raise QueryError("interval", "must be a number of seconds") from None
    return data


class SchedulesView(PanelView):
    """The schedules, their pause, resume and "run now" buttons, and the
    form of the schedules saved in the site."""

    template = ViewPageTemplateFile("templates/schedules.pt")
    misfire_policies = MISFIRE_POLICIES
    form_error = None
    #: The saved schedule the form changes (``?edit=``), or ``None``.
    edit_name = None

    @without_tracebacks
    def __call__(self):
        self.scope  # noqa: B018 -- refuses a database-wide scope early
        if self.request.method == "POST":
            CheckAuthenticator(self.request)
            if "form.buttons.save" in self.request.form:
                return self.save()
            return self.perform()
        try:
            self.edit_name = _text(self.request.form, "edit", "edit") or None
        except QueryError as error:
            IStatusMessage(self.request).add(
                _("msg_bad_edit", default="The schedule could not be opened: ${error}",
                  mapping={"error": str(error)}), type="error")
            self.request.response.setStatus(400)
        return self.template()

    def perform(self):
        names = [name for name in ACTIONS if f"form.buttons.{name}" in self.request.form]
        messages = IStatusMessage(self.request)
        try:
            if len(names) != 1:
                raise LookupError("ask for one of pause, resume, run, delete")
            record = console.get_record(self.queues, self.request.form.get("name"), self.scope)
            if not console.may_act(record, self.context):
                raise Forbidden("you may not change or run this schedule")
            messages.add(ACTIONS[names[0]](self, record), type="info")
        except (LookupError, QueryError, access.RunAsRefused) as error:
            messages.add(_("msg_action_failed", default="Nothing was done: ${error}",
                           mapping={"error": str(error)}), type="error")
        self.request.response.redirect(self.schedules_url)
        return ""

    def save(self):
        if not self.may_edit:
            raise Forbidden(f"saving schedules needs the permission {saved.MANAGE!r}")
        form = self.request.form
        try:
            editing = _text(form, "saved.editing", "name") or None
            data = _form_values(form)
            record = saved.save(self.context, self.queues,
                                editing or _text(form, "saved.name", "name"),
                                data, replace=editing is not None)
        except (LookupError, QueryError) as error:
            self.form_error = str(error)
            return self.template()
        IStatusMessage(self.request).add(
            _("msg_schedule_saved", default="Schedule ${name} was saved; it runs as you.",
              mapping={"name": record.name}), type="info")
        self.request.response.redirect(self.schedules_url)
        return ""

    @property
    def schedules_url(self):
        return self.page_url("asyncjobs-schedules")

    def schedules(self):
        """:func:`..schedules.console.list_schedules` of the page's scope,
        each with ``may_act`` and ``saved`` (its saved name, or ``None``)."""
        found = []
        for record in console.records_in(self.queues, self.scope):
            facts = console.describe(record)
            facts["may_act"] = console.may_act(record, self.context)
            try:
                facts["saved"] = saved.saved_name(record, self.context)
            except QueryError:
                facts["saved"] = None
            found.append(facts)
        return found

    @property
    def may_edit(self):
        return saved.may_edit(self.context)

    def schedulables(self):
        """The schedulables the form offers, by title."""
        return sorted(schedulables.SCHEDULABLES.values(), key=lambda s: s.title)

    def form_values(self):
        """What the form shows: the request's after an error, else those
        of the saved schedule ``?edit=`` names, else the defaults."""
        form = self.request.form
        name = self.edit_name
        declared = saved.saved(self.context).get(name) if name else None
        values = {**saved.DEFAULTS, **(declared or {}), "name": name if declared else ""}
        values["editing"] = values["name"]
        values["arguments"] = json.dumps(values["arguments"])
        values["quota_names"] = " ".join(values["quota_names"])
        values["interval"] = "" if values["interval"] is None else f"{values['interval']:g}"
        if self.form_error is not None:
            values.update({key[len("saved."):]: value for key, value in form.items()
                           if key.startswith("saved.") and isinstance(value, str)})
            values["enabled"] = bool(form.get("saved.enabled"))
        return {key: "" if value is None else value for key, value in values.items()}
