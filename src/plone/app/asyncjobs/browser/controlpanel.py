"""The job control panel ("Asynchronous jobs" in Site Setup): shared parts.

Pages, all on the site root, for ``plone.app.asyncjobs: Manage jobs``
(``controlpanel.zcml``):

``@@asyncjobs-controlpanel`` (:mod:`.overview`)
    queues with counts, dispatchers with their agents, running jobs, the
    last hour's throughput, the purge form;
``@@asyncjobs-jobs?state=...`` (:mod:`.joblist`)
    one list (pending, active, completed, failed) a page at a time;
``@@asyncjobs-job?id=...`` (:mod:`.jobdetail`)
    everything about one job;
``@@asyncjobs-action?action=...`` (:mod:`.actions`)
    GET: the confirmation page of an action; POST: the action itself;
``@@asyncjobs-live?ids=1,2`` (:mod:`.live`)
    JSON facts of some jobs, for ``++resource++plone.app.asyncjobs/controlpanel.js``.

Every page shows the jobs of its site only (:mod:`..access`); with
``scope=database`` (which every link of the page then repeats) a Manager
of the Zope root sees every job of the database, and anyone else gets
403.  The forms of database-wide actions (resize, pause, resume, purge)
are shown to those who may do them only (:func:`..access.may_manage_workers`).

Stable hooks for browser tests
------------------------------

Page roots: ``#asyncjobs-overview``, ``#asyncjobs-joblist``,
``#asyncjobs-job``, ``#asyncjobs-confirm``.  Each page root except the
confirmation carries ``data-asyncjobs-live`` (the live view's URL) and
``data-asyncjobs-polling`` (``on`` while the script polls, ``off`` while
the page is hidden or nothing is left to follow).

Overview: ``#asyncjobs-queues`` (rows ``tr[data-queue]``, counts in
``[data-count=pending|active|completed|failed]``), ``#asyncjobs-last-hour``
(``[data-last-hour=completed|failed]``), ``#asyncjobs-dispatchers`` (one
``[data-dispatcher=<uuid>]`` each, with ``data-dispatcher-state`` (alive,
stuck, dead, deactivated) and ``data-dispatcher-paused`` (``true`` or
``false``); agents ``tr[data-agent=<name>]`` with ``data-agent-queue``
and ``data-agent-size``; held jobs ``a[data-agent-job=<id>]``),
``#asyncjobs-running`` (running jobs), ``#asyncjobs-purge`` (the purge form).

Every page has a title of its own (``page_title``, for the browser's
tab: :mod:`.title`), and the panel's stylesheet
(``++resource++plone.app.asyncjobs/controlpanel.css``): on a phone, the
rows of its tables (``table.asyncjobs-table``) are blocks whose cells are
led by their ``data-label``.

Job rows (lists, running jobs, callbacks, sub-jobs) and the job page's
root: ``[data-job-id=<id>]`` with ``data-job-status`` (the engine's status:
new, pending, assigned, active, callbacks, completed) and
``data-job-state`` (the list it is in); inside, ``[data-job-field=status]``
(the badge), ``[data-job-field=progress]`` holding a Bootstrap
``.progress[role=progressbar]`` with ``aria-valuenow`` (0-100; absent when
the job reported no total), and ``[data-job-field=result]``.

Job list: ``#asyncjobs-filters`` (a GET form; controls ``#asyncjobs-filter-<name>``
for queue, user, callable, text, since, until, sort, size),
``#asyncjobs-jobs`` (the table), ``a#asyncjobs-next-page`` (with ``after=``),
``a#asyncjobs-first-page``, ``#asyncjobs-exhausted`` (searched N jobs, continue).

Job page: ``[data-job-field=callable]`` (the function, in the header),
``#asyncjobs-traceback`` (``<pre>``), ``#asyncjobs-cancelled`` (a cancelled
job's reason in ``[data-job-field=cancel-reason]``, which job tables use
too), ``#asyncjobs-job-retried-as`` (a link ``a[data-retry=<id>]`` per
retry), ``#asyncjobs-callbacks``,
``#asyncjobs-subjobs``, ``#asyncjobs-cancel-requested`` (a running job
asked to stop, with ``<time data-job-field=cancel-requested>``),
``a[data-action=cancel|retry|remove]`` (to the
confirmation page), ``[data-job-field=started|ended]`` (``<time>``),
``[data-job-field=no-progress]`` (hidden once a report came) and
``[data-job-field=finished-notice]`` (shown once the job finished); an
unknown id gives ``#asyncjobs-job-missing`` instead.  Confirmation page: a POST form ``#asyncjobs-confirm-form``
whose submit button is named ``form.buttons.<action>`` (cancel, retry,
remove, purge, resize, pause, resume).  Overview forms that lead there:
``form[data-action=resize|pause|resume|purge]``.
"""
import functools
import json
import math
from datetime import datetime
from functools import cached_property
from urllib.parse import urlencode

from plone import api as plone_api
from Products.Five import BrowserView
from Products.Five.browser.pagetemplatefile import ViewPageTemplateFile
from zope.i18n import translate
from zope.i18nmessageid import MessageFactory

from transaction.interfaces import TransientError
from zExceptions import Forbidden
from zExceptions import HTTPException
from zExceptions import InternalError

from plone.app.asyncjobs import access
from plone.app.asyncjobs import api
from plone.app.asyncjobs.engine import listing
from plone.app.asyncjobs.engine import status


_ = MessageFactory("plone.app.asyncjobs")

#: The value of the ``scope`` parameter that asks for every site's jobs.
DATABASE_SCOPE = "database"

#: Bootstrap badge classes by the list a job is in (``state`` of
#: :func:`.inspection.describe`), and for a cancelled job (listed with the
#: failed ones).
BADGES = {
    listing.PENDING: "text-bg-secondary",
    listing.RUNNING: "text-bg-primary",
    listing.SUCCEEDED: "text-bg-success",
    listing.FAILED: "text-bg-danger",
    status.CANCELLED: "text-bg-warning",
}

#: The job lists (:data:`.engine.listing.STATES`) and their tab titles.
LISTS = tuple((state, _(f"list_{state}", default=status.LABELS[state].capitalize()))
              for state in listing.STATES)

#: Words shown for a job's status or outcome (see :meth:`PanelView.status_key`):
#: the engine's (:data:`.engine.status.LABELS`), translated.
STATUS_LABELS = {key: _(f"status_{key}", default=label)
                 for key, label in status.LABELS.items()}


#: The headings of a job table's time column (templates/asyncjobs_parts.pt).
TIME_LABELS = {
    "begin_after": _("Due"),
    "started": _("Started"),
    "ended": _("Finished"),
}


def plural(count, one, many):
    """``one`` if ``count`` (a number, or its text) is 1, else ``many``:
    two messages whose mapping the caller gives.  English's rule: a
    translation has these two forms only."""
    try:
        single = float(count) == 1
    except (TypeError, ValueError):
        single = False
    return one if single else many


def badge_key(job):
    """The :data:`BADGES` key of a job (:func:`.inspection.describe` facts)."""
    return status.CANCELLED if job["outcome"] == status.CANCELLED else job["state"]


def without_tracebacks(call):
    """Wrap a page's ``__call__``: an unexpected error is logged under a
    number (:func:`..access.log_failure`) and the page fails with that
    number only, so that Plone's error page, which shows tracebacks to Site
    Administrators too, has none of the page's to show."""

    @functools.wraps(call)
    def guarded(self):
        try:
            return call(self)
        except (HTTPException, TransientError):
            raise  # refusals, redirects, conflicts (the publisher retries)
        except Exception:
            number = access.log_failure(self.request)
        raise InternalError(f"the page failed; the server's log has the details under {number}")

    return guarded


class PanelView(BrowserView):
    """Base of the control panel's pages: queues, URLs and formatting."""

    #: Macros shared by the templates (``view/parts/macros/...``).
    parts = ViewPageTemplateFile("templates/asyncjobs_parts.pt")

    @property
    def page_title(self):
        """What the browser's tab says before the site's title (see
        :class:`.title.PanelTitleViewlet`); each page names itself."""
        return _("title_overview", default="Asynchronous jobs")

    @cached_property
    def queues(self):
        return api.get_queues(self.context)

    @cached_property
    def scope(self):
        """The jobs this request may see; ``Forbidden`` for a database-wide
        view asked for by anyone but a Manager of the Zope root."""
        try:
            return access.scope_for(self.context, self.database_wide_requested)
        except access.ScopeRefused as refused:
            raise Forbidden(str(refused)) from None

    @property
    def database_wide_requested(self):
        return self.request.form.get("scope") == DATABASE_SCOPE

    @cached_property
    def may_manage_workers(self):
        """Whether the forms of database-wide actions are shown."""
        return access.may_manage_workers(self.context)

    @cached_property
    def is_root_manager(self):
        return access.is_root_manager(self.context)

    @cached_property
    def show_tracebacks(self):
        return access.may_see_tracebacks(self.context)

    @property
    def scope_switch_url(self):
        """For a Manager of the Zope root: the other scope's overview."""
        if not self.is_root_manager:
            return None
        url = f"{self.context.absolute_url()}/@@asyncjobs-controlpanel"
        return url if self.database_wide_requested else f"{url}?scope={DATABASE_SCOPE}"

    @cached_property
    def actor(self):
        """The member id that actions log as theirs."""
        return plone_api.user.get_current().getId()

    # -- URLs ----------------------------------------------------------------------

    def page_url(self, name, **params):
        """The URL of the page ``@@name`` with ``params`` (``None`` left out)."""
        url = f"{self.context.absolute_url()}/@@{name}"
        if self.database_wide_requested:
            params = {**params, "scope": DATABASE_SCOPE}
        query = urlencode({k: v for k, v in params.items() if v is not None}, doseq=True)
        return f"{url}?{query}" if query else url

    @property
    def overview_url(self):
        return self.page_url("asyncjobs-controlpanel")

    @property
    def setup_url(self):
        return f"{self.context.absolute_url()}/@@overview-controlpanel"

    def job_url(self, job_id):
        return self.page_url("asyncjobs-job", id=job_id)

    def list_url(self, state, **filters):
        return self.page_url("asyncjobs-jobs", state=state, **filters)

    def context_url(self, path):
        """The URL of the object at the physical ``path`` (virtual hosting aware)."""
        return self.request.physicalPathToURL(path)

    @property
    def live_url(self):
        return self.page_url("asyncjobs-live")

    @property
    def script_url(self):
        return (f"{self.context.absolute_url()}"
                "/++resource++plone.app.asyncjobs/controlpanel.js")

    @property
    def stylesheet_url(self):
        return (f"{self.context.absolute_url()}"
                "/++resource++plone.app.asyncjobs/controlpanel.css")

    # -- words and formats -----------------------------------------------------------

    def queue_label(self, name):
        return name if name else _("label_default_queue", default="(default queue)")

    @staticmethod
    def status_key(job):
        """A finished job shows its outcome, any other its status."""
        return job["outcome"] or job["status"]

    def time_label(self, time_field):
        """The heading of a job table's time column (``begin_after``,
        ``started`` or ``ended``), translated."""
        return translate(TIME_LABELS[time_field], context=self.request)

    def status_label(self, job):
        key = self.status_key(job)
        return STATUS_LABELS.get(key, key)

    @staticmethod
    def badge_class(job):
        return f"badge {BADGES.get(badge_key(job), 'text-bg-light')}"

    def badge(self, job):
        """The status badge of a job (:func:`.inspection.describe` facts):
        ``{"label", "class"}``, as the page shows it and
        controlpanel.js updates it."""
        return {"label": translate(self.status_label(job), context=self.request),
                "class": self.badge_class(job)}

    @staticmethod
    def format_time(text):
        """An ISO 8601 time of :mod:`.inspection` as ``YYYY-MM-DD HH:MM:SS UTC``."""
        if not text:
            return ""
        return datetime.fromisoformat(text).strftime("%Y-%m-%d %H:%M:%S UTC")

    @staticmethod
    def format_duration(seconds):
        """``2 d 3 h``, ``4 h 5 min``, ``6 min 7 s`` or ``8.9 s``."""
        if seconds is None:
            return ""
        if seconds < 60:
            return f"{seconds:.1f} s"
        minutes, secs = divmod(int(seconds), 60)
        hours, minutes = divmod(minutes, 60)
        days, hours = divmod(hours, 24)
        if days:
            return f"{days} d {hours} h"
        if hours:
            return f"{hours} h {minutes} min"
        return f"{minutes} min {secs} s"

    @staticmethod
    def percent(progress):
        """0-100 for a progress report with a total, else ``None`` (halves
        round up, as ``Math.round`` does in controlpanel.js)."""
        if not progress or progress["fraction"] is None:
            return None
        return math.floor(progress["fraction"] * 100 + 0.5)

    def progress_done(self, progress):
        """What an indeterminate progress bar says: how much was done."""
        return translate(_("progress_done", default="${done} done",
                           mapping={"done": f"{progress['done']:g}"}), context=self.request)

    @property
    def lists(self):
        return LISTS

    @property
    def live_labels(self):
        """The words controlpanel.js shows, translated, as JSON (a job's
        badge comes with its facts: :meth:`badge`)."""
        return json.dumps({
            "progress": translate(_("label_progress", default="Progress"),
                                  context=self.request),
            "done": translate(_("progress_done", default="${done} done"),
                              context=self.request),
        })
