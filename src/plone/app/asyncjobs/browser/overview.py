"""``@@asyncjobs-controlpanel``: the overview page of the job control panel.

Shows every queue with its jobs counted by list, every dispatcher that
ever served a queue (state, last ping, uptime, agents and the jobs they
hold, and how the jobs it started in the last hour were picked up, as of
its last ping), the jobs running now with their progress, and the last
hour's throughput; its forms lead to the confirmation pages of pausing and
resuming a dispatcher, resizing an agent and purging old jobs (shown to
those who may do them; the others see the dispatchers read-only).  The
facts come from :func:`.inspection.overview`, for the page's scope.
"""
from Products.Five.browser.pagetemplatefile import ViewPageTemplateFile
from zope.i18n import translate
from zope.i18nmessageid import Message

from plone.app.asyncjobs import inspection
from plone.app.asyncjobs.browser.controlpanel import PanelView
from plone.app.asyncjobs.browser.controlpanel import without_tracebacks
from plone.app.asyncjobs.browser.controlpanel import _
from plone.app.asyncjobs.engine import listing
from plone.app.asyncjobs.engine import status


#: How many running jobs the overview lists; the "active" list has them all.
RUNNING_SHOWN = 20
#: The purge form's suggestion: jobs finished more than a week ago.
PURGE_DAYS = 7

#: The last hour's pace in its unit (see :attr:`OverviewView.rate`).
RATES = {
    "second": _("rate_per_second", default="about ${rate} a second"),
    "minute": _("rate_per_minute", default="about ${rate} a minute"),
}

#: Bootstrap badge classes of the dispatcher states (:data:`.engine.status.DISPATCHER_STATES`).
DISPATCHER_BADGES = {
    status.ALIVE: "text-bg-success",
    status.STUCK: "text-bg-warning",
    status.DEAD: "text-bg-danger",
    status.DEACTIVATED: "text-bg-secondary",
}


class OverviewView(PanelView):
    """Queues, dispatchers, running jobs and the last hour."""

    template = ViewPageTemplateFile("templates/overview.pt")
    purge_days = PURGE_DAYS

    @without_tracebacks
    def __call__(self):
        self.facts = inspection.overview(self.queues, self.scope)
        self.running = inspection.JobQuery(
            {"state": listing.RUNNING, "size": RUNNING_SHOWN}).run(self.queues, self.scope)
        self.pickups = {str(uuid): record.pickups
                        for queue in self.queues.values()
                        for uuid, record in queue.dispatchers.items()
                        if getattr(record, "pickups", None)}
        return self.template()

    def pickup_text(self, uuid):
        """How the dispatcher's jobs of the last hour were picked up, and
        their pickup latency (see ``engine.pickups``); ``None`` without jobs."""
        summary = self.pickups.get(uuid)
        if not summary or not summary["jobs"]:
            return None
        ways = ", ".join(f"{how} {count}" for how, count in sorted(summary["by"].items()))
        latency = summary["latency"]
        if latency is None:
            return ways
        times = ", ".join(f"{key} {latency[key].total_seconds() * 1000:.0f} ms"
                          for key in ("p50", "p90", "p99", "max"))
        return f"{ways}; latency {times}"

    @property
    def rate(self):
        """The last hour's pace, when there was one worth a unit: ``about
        2.5 a second`` or ``about 12 a minute``; ``None`` for fewer than a
        job a minute (the hour's count says it better)."""
        completed = self.facts["last_hour"]["completed"]
        for per, seconds in (("second", 1), ("minute", 60)):
            pace = completed * seconds / 3600
            if pace >= 1:
                # Two significant digits, no exponent: 3500 a minute is not 3.5e+03.
                number = f"{pace:.2g}" if pace < 100 else f"{pace:.0f}"
                return translate(Message(RATES[per], mapping={"rate": number}),
                                 context=self.request)
        return None

    @staticmethod
    def count_label(queue, state):
        """A queue's count of a list; ``5000+`` when counting stopped there."""
        count = queue["counts"][state]
        return f"{count}+" if state in queue["counts_capped"] else str(count)

    @staticmethod
    def dispatcher_state(dispatcher):
        """``(label, badge class)`` of a dispatcher's state."""
        state = dispatcher["state"]
        return _(f"dispatcher_{state}", default=state), DISPATCHER_BADGES[state]

    @property
    def action_url(self):
        return self.page_url("asyncjobs-action")
