"""``@@asyncjobs-demo``: a page that queues three example jobs.

For a newcomer with ``make run`` going: open
``http://localhost:8080/Plone/@@asyncjobs-demo`` as a Manager, press the
button, and watch a worker run

* :func:`count_slowly`, which takes about 20 seconds and reports its
  progress at each step;
* :func:`fail_on_purpose`, which raises, so its failure is stored;
* :func:`say_when`, queued to start a minute later.

The job functions are ordinary module-level functions that take the
context (here the site) first, as every job queued with
:func:`plone.app.asyncjobs.api.queue_job` does.  After queuing them, the
page names them by their ids in its URL (no session needed) and shows
their status, progress and results; it reloads itself every few seconds
while one of them is unfinished.  Each row links to the job's page in
the job control panel.
"""
import time
from datetime import datetime
from datetime import timedelta
from datetime import timezone

from plone.protect import CheckAuthenticator
from Products.Five import BrowserView
from Products.Five.browser.pagetemplatefile import ViewPageTemplateFile
from Products.statusmessages.interfaces import IStatusMessage
from zope.i18nmessageid import MessageFactory
from ZODB.POSException import POSKeyError
from ZODB.utils import p64

from plone.app.asyncjobs import access
from plone.app.asyncjobs import api
from plone.app.asyncjobs.browser.controlpanel import STATUS_LABELS
from plone.app.asyncjobs.browser.controlpanel import PanelView
from plone.app.asyncjobs.engine import listing
from plone.app.asyncjobs.engine.failure import is_failure
from plone.app.asyncjobs.engine.failure import summary
from plone.app.asyncjobs.engine.ids import object_id
from plone.app.asyncjobs.engine.progress import progress_of
from plone.app.asyncjobs.engine.progress import report_progress
from plone.app.asyncjobs.engine.naming import job_name
from plone.app.asyncjobs.engine.status import COMPLETED
from plone.app.asyncjobs.engine.status import PENDING
from plone.app.asyncjobs.engine.status import outcome_of
from plone.app.asyncjobs.interfaces import IContextJob
from plone.app.asyncjobs.service.queues import queues_connection
from plone.app.asyncjobs.service.service import connection_for


_ = MessageFactory("plone.app.asyncjobs")

#: How long the scheduled demo job waits before it may start.
SCHEDULE_DELAY = timedelta(minutes=1)

#: What the page passes to :func:`count_slowly`: about 20 seconds in all.
COUNT_STEPS = 20
SECONDS_PER_STEP = 1.0

#: Seconds between reloads of the page while a listed job is unfinished.
RELOAD_SECONDS = 3


# -- the job functions -------------------------------------------------------------


def count_slowly(context, steps=20, seconds_per_step=1.0):
    """Count to ``steps``, sleeping ``seconds_per_step`` at each step, and
    report the progress after each one; return a summary."""
    started = time.monotonic()
    report_progress(0, steps, "starting")
    for step in range(1, steps + 1):
        time.sleep(seconds_per_step)
        report_progress(step, steps, f"counted {step} of {steps}")
    return f"counted to {steps} in {time.monotonic() - started:.1f} s"


def fail_on_purpose(context):
    """Raise, so that the job's result is a failure."""
    raise RuntimeError("this demo job fails on purpose")


def say_when(context):
    """Return when the job ran and the URL of its context."""
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"ran at {now} in {context.absolute_url()}"


#: The demo job functions, in the order the page describes them.
DEMO_FUNCTIONS = (count_slowly, fail_on_purpose, say_when)


def queue_demo_jobs(context):
    """Queue the three demo jobs on ``context``; return them."""
    return [
        api.queue_job(count_slowly, context, steps=COUNT_STEPS,
                      seconds_per_step=SECONDS_PER_STEP),
        api.queue_job(fail_on_purpose, context),
        api.queue_job(say_when, context, delay=SCHEDULE_DELAY),
    ]


# -- finding and describing demo jobs ----------------------------------------------


def job_ids(jobs):
    """The ``jobs`` query string value naming ``jobs``: their oids."""
    return ",".join(str(object_id(job)[0]) for job in jobs)


def load_demo_jobs(context, ids):
    """The demo jobs of the site ``context`` named by ``ids`` (from
    :func:`job_ids`), looked up in the database of its queues; other
    objects, another site's jobs (:mod:`..access`: jobs belong to their
    site) and unknown or malformed ids are left out."""
    connection = queues_connection(connection_for(context))
    scope = access.Scope.of_site(context)
    jobs = []
    for text in ids.split(","):
        try:
            job = connection.get(p64(int(text)))
            if not (IContextJob.providedBy(job) and job.func in DEMO_FUNCTIONS
                    and scope.includes(job)):
                continue
        except (ValueError, OverflowError, POSKeyError):
            continue
        if job not in jobs:
            jobs.append(job)
    return jobs


def _utc(when):
    return when.astimezone(timezone.utc).strftime("%H:%M:%S UTC") if when else ""


def describe_job(job):
    """What the page shows of ``job``: a dict for the template."""
    func = job.func
    status = job.status
    progress = progress_of(job)
    result = job.result
    if status != COMPLETED:
        outcome = ""
        if status == PENDING and job.begin_after is not None:
            outcome = f"starts at {_utc(job.begin_after)} or later"
    elif is_failure(result):
        outcome = summary(result)  # module.Error: message, as the control panel shows it
    else:
        outcome = str(result)
    percent = None
    if progress is not None and progress.fraction is not None:
        percent = round(progress.fraction * 100)
    # The badge as the control panel shows it.
    shown = {"status": status, "state": listing.list_of(job),
             "outcome": outcome_of(result) if status == COMPLETED else None}
    return {
        "id": str(object_id(job)[0]),
        "name": job_name(job),
        "short_name": func.__name__,
        "status": status,
        "badge_class": PanelView.badge_class(shown),
        "badge_label": STATUS_LABELS[PanelView.status_key(shown)],
        "failed": status == COMPLETED and is_failure(result),
        "progress": progress,
        "percent": percent,
        "progress_text": (
            "" if progress is None else
            f"{progress.done:g} / {progress.total:g}" if progress.total else f"{progress.done:g}"
        ),
        "progress_message": "" if progress is None else progress.message,
        "outcome": outcome,
        "begin_after": _utc(job.begin_after),
    }


# -- the view ----------------------------------------------------------------------


class DemoView(BrowserView):
    """Explains the demo jobs; a POST queues them (Manager only).

    The POST redirects to the page with the new jobs' ids in the query
    string (``?jobs=12,13,14``), where a table shows how they are doing.
    """

    template = ViewPageTemplateFile("templates/demo.pt")
    jobs = ()
    reload_url = None

    def __call__(self):
        if self.request.method == "POST":
            return self.queue()
        ids = self.request.form.get("jobs", "")
        if isinstance(ids, str) and ids:
            jobs = load_demo_jobs(self.context, ids)
            self.jobs = [describe_job(job) for job in jobs]
            self.reload_url = f"{self.url}?jobs={job_ids(jobs)}"
        if self.unfinished:
            # Let a person watch the jobs move without pressing reload.
            self.request.response.setHeader("Refresh", str(RELOAD_SECONDS))
        return self.template()

    def queue(self):
        CheckAuthenticator(self.request)
        if "form.buttons.queue" not in self.request.form:
            self.request.response.setStatus(400)
            return "Unknown action"
        jobs = queue_demo_jobs(self.context)
        IStatusMessage(self.request).add(
            _("demo_jobs_queued",
              default="Queued ${count} demo jobs. A worker runs them once this "
                      "request has committed; the table below follows them.",
              mapping={"count": len(jobs)}),
            type="info",
        )
        self.request.response.redirect(f"{self.url}?jobs={job_ids(jobs)}")
        return ""

    @property
    def unfinished(self):
        return any(job["status"] != COMPLETED for job in self.jobs)

    @property
    def url(self):
        return f"{self.context.absolute_url()}/@@asyncjobs-demo"

    @property
    def control_panel_url(self):
        return f"{self.context.absolute_url()}/@@asyncjobs-controlpanel"

    def job_url(self, job):
        """The page of ``job`` (a :func:`describe_job` dict) in the job
        control panel, where its arguments, times and traceback are."""
        return f"{self.context.absolute_url()}/@@asyncjobs-job?id={job['id']}"

    @property
    def reload_seconds(self):
        return RELOAD_SECONDS

    @property
    def count_steps(self):
        return COUNT_STEPS

    @property
    def seconds_per_step(self):
        return f"{SECONDS_PER_STEP:g}"

    @property
    def schedule_minutes(self):
        return int(SCHEDULE_DELAY.total_seconds() // 60)
