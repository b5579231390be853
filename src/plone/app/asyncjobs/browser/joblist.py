"""``@@asyncjobs-jobs``: one job list (pending, active, completed, failed)
a page at a time.

The filters (queue, user, callable, free text, since/until) and the order
are a GET form; the pages are linked by a cursor (``after=``), since
counting a filtered list would mean reading every job (see
:class:`.inspection.JobQuery`).  A filtered page that searched
:data:`.inspection.SCAN_LIMIT` jobs without filling up says so and offers
to search on.  Bad parameters give a status message and status 400.
"""
from Products.Five.browser.pagetemplatefile import ViewPageTemplateFile
from Products.statusmessages.interfaces import IStatusMessage
from zope.i18n import translate

from plone.app.asyncjobs import inspection
from plone.app.asyncjobs.browser.controlpanel import PanelView
from plone.app.asyncjobs.browser.controlpanel import without_tracebacks
from plone.app.asyncjobs.browser.controlpanel import _
from plone.app.asyncjobs.engine import listing


#: The ``queue`` value that means every queue (the default queue's name is '').
ALL_QUEUES = "*"
PAGE_SIZES = (10, 20, 50, 100)
#: Text filters, passed on to :class:`.inspection.JobQuery` as they are.
TEXT_FILTERS = ("user", "callable", "text", "since", "until")
#: The time each list shows and sorts by.
TIME_FIELDS = {listing.PENDING: "begin_after", listing.RUNNING: "started",
               listing.SUCCEEDED: "ended", listing.FAILED: "ended"}
SORT_LABELS = {
    "begin_after": (_("sort_due_first", default="Soonest due first"),
                    _("sort_due_last", default="Latest due first")),
    "started": (_("sort_started_last", default="Latest started first"),
                _("sort_started_first", default="Earliest started first")),
    "ended": (_("sort_ended_last", default="Latest finished first"),
              _("sort_ended_first", default="Earliest finished first")),
}


class JobListView(PanelView):
    """A page of a job list, with the filter form and the cursor links."""

    template = ViewPageTemplateFile("templates/joblist.pt")
    page = None
    error = None

    @without_tracebacks
    def __call__(self):
        scope = self.scope
        state = self.value("state")
        self.state = state if state in inspection.STATES else inspection.STATES[0]
        try:
            query = inspection.JobQuery(self.query_params())
        except inspection.QueryError as error:
            self.error = error
            IStatusMessage(self.request).add(
                _("msg_bad_filter", default="The list could not be shown: ${error}",
                  mapping={"error": str(error)}), type="error")
            self.request.response.setStatus(400)
        else:
            self.page = query.run(self.queues, scope)
        return self.template()

    def value(self, name):
        """The form's (last) string for ``name``, or ``None``."""
        value = self.request.form.get(name)
        if isinstance(value, list):
            value = value[-1] if value else None
        return None if value is None else str(value)

    def query_params(self):
        params = {name: self.value(name)
                  for name in ("state", "sort", "size", "after") + TEXT_FILTERS}
        params["queue"] = None if self.queue in (None, ALL_QUEUES) else [self.queue]
        return params

    @property
    def queue(self):
        return self.value("queue")

    @property
    def link_params(self):
        """The form's parameters as the links of this page repeat them."""
        params = {name: self.value(name) for name in ("state", "sort", "size") + TEXT_FILTERS}
        params = {name: value for name, value in params.items() if value}
        if self.queue is not None:  # '' names the default queue
            params["queue"] = self.queue
        return params

    @property
    def next_url(self):
        if self.page is None or self.page["next"] is None:
            return None
        return self.page_url("asyncjobs-jobs", **self.link_params, after=self.page["next"])

    @property
    def first_url(self):
        if not self.value("after"):
            return None
        return self.page_url("asyncjobs-jobs", **self.link_params)

    @property
    def time_field(self):
        return TIME_FIELDS[self.state]

    @property
    def columns(self):
        return ("progress",) if self.state in listing.UNFINISHED else ("result",)

    @property
    def title(self):
        return dict(self.lists)[self.state]

    @property
    def page_title(self):
        return _("title_job_list", default="Jobs: ${list}",
                 mapping={"list": translate(self.title, context=self.request)})

    @property
    def queue_options(self):
        """``(value, label, selected)`` of the queue filter."""
        current = ALL_QUEUES if self.queue is None else self.queue
        options = [(ALL_QUEUES, _("label_all_queues", default="All queues"))]
        options += [(name, self.queue_label(name)) for name in sorted(self.queues.keys())]
        return [(value, label, value == current) for value, label in options]

    @property
    def sort_options(self):
        natural, reverse = SORT_LABELS[self.time_field]
        current = self.value("sort") or "natural"
        return [(value, label, value == current)
                for value, label in (("natural", natural), ("reverse", reverse))]

    @property
    def size_options(self):
        current = self.value("size") or str(inspection.DEFAULT_PAGE_SIZE)
        return [(str(size), str(size) == current) for size in PAGE_SIZES]

    @property
    def filtered(self):
        return any(self.value(name) for name in TEXT_FILTERS)

    def invalid(self, name):
        """Whether the field ``name`` is the one the error is about."""
        return self.error is not None and self.error.field == name
