"""What one dispatcher's worker threads ran: counts and durations, by label.

The dispatcher calls :meth:`JobMetrics.started` and
:meth:`JobMetrics.finished` for every job one of its worker threads runs
(see :meth:`.dispatcher.Dispatcher.job_started`); :mod:`.metrics` exposes
them to Prometheus.  Label values are bounded: a queue name and the
dotted name of what the job calls (:func:`.naming.job_label`), never
arguments or object reprs.

A job's *outcome*, as counted here, is read from the job once its worker
thread is done with it:

``completed``
    it ended (or waits for its callbacks) with a result that is not a
    failure;
``failed``
    it ended with a failure other than :class:`.exceptions.CancelledError`
    (a job found expired when claimed counts here too);
``cancelled``
    it ended with a :class:`.exceptions.CancelledError` failure;
``retried``
    counted once per attempt that failed and that the job's retry policy
    had run again: at once in the same thread (a conflict, say), or
    rescheduled in its queue (the job is pending again).

A job that waits for another job or a Deferred, or that another worker
took over meanwhile, counts as started only: its outcome comes later,
elsewhere.
"""
import math

from prometheus_client import Histogram

from plone.app.asyncjobs.engine import status as statuses
from plone.app.asyncjobs.engine.counters import Counters
from plone.app.asyncjobs.engine.naming import job_label


#: What :attr:`JobMetrics.counts` counts: starts, and the outcomes (a
#: succeeded job counts as completed, the metric's name since its start).
STARTED, COMPLETED, RETRIED = "started", "completed", "retried"
FAILED, CANCELLED = statuses.FAILED, statuses.CANCELLED

#: Upper bounds (seconds) of the run-time histogram's buckets: jobs take
#: from milliseconds (a reindex) to an hour (an export).
RUN_TIME_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
                    300, 900, 3600, math.inf)

#: Upper bounds (seconds) of the pickup-latency histogram's buckets: push
#: pickup takes tens of milliseconds, the poll (the safety net) up to its
#: interval, 10 s by default.
PICKUP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, math.inf)

#: ``(name, help)`` of the histograms.
RUN_TIME = ("asyncjobs_job_run_seconds",
            "Seconds from a job's start in a worker thread to its outcome there")
PICKUP_LATENCY = ("asyncjobs_job_pickup_latency_seconds",
                  "Seconds a job waited between being ready (due and committed) and its start")

#: The pickup label of a job whose pickup is unknown (see :mod:`.pickups`).
UNKNOWN_PICKUP = "unknown"


def outcome(job):
    """The outcome of ``job`` (see the module documentation) now that its
    worker thread is done with it, or ``None`` if it has none yet."""
    status = job.status
    if status == statuses.PENDING:
        return RETRIED
    if status not in (statuses.CALLBACKS, statuses.COMPLETED):
        return None
    ended = statuses.outcome_of(job.result)
    return COMPLETED if ended == statuses.SUCCEEDED else ended


class JobMetrics:
    """The counts and histograms of the jobs one dispatcher ran (thread-safe).

    ``dispatcher`` is the dispatcher's label value (its UUID as text).
    :attr:`counts` maps ``(event, queue name, callable name)`` to a count,
    ``event`` being :data:`STARTED` or an outcome.  :attr:`run_time` (labels
    dispatcher, queue, callable) and :attr:`pickup_latency` (dispatcher,
    queue, pickup) are histograms registered in no registry.
    """

    def __init__(self, dispatcher):
        self.dispatcher = dispatcher
        self.counts = Counters()
        self.run_time = Histogram(*RUN_TIME, ("dispatcher", "queue", "callable"),
                                  buckets=RUN_TIME_BUCKETS, registry=None)
        self.pickup_latency = Histogram(*PICKUP_LATENCY, ("dispatcher", "queue", "pickup"),
                                        buckets=PICKUP_BUCKETS, registry=None)

    def started(self, job, info):
        """Count the start of ``job``; ``info`` is its dispatcher record
        (``queue``, ``pickup``, ``pickup latency``)."""
        self.counts.add((STARTED, info["queue"], job_label(job)))
        waited = info["pickup latency"]
        if waited is not None:
            self.pickup_latency.labels(
                self.dispatcher, info["queue"], info["pickup"] or UNKNOWN_PICKUP,
            ).observe(max(waited.total_seconds(), 0))

    def finished(self, job, info):
        """Count the outcome of ``job``, which its worker thread ran from
        attempt ``info["attempt"]`` on, and its run time (``info``'s
        ``started`` to ``completed``); nothing if it was ``reassigned``."""
        if info["reassigned"]:
            return
        result = outcome(job)
        if result is None:
            return
        queue, name = info["queue"], job_label(job)
        # Each attempt after the first in this thread is a failed one run again.
        reruns = job.attempts - info["attempt"]
        if reruns > 0:
            self.counts.add((RETRIED, queue, name), reruns)
        self.counts.add((result, queue, name))
        seconds = (info["completed"] - info["started"]).total_seconds()
        self.run_time.labels(self.dispatcher, queue, name).observe(max(seconds, 0))
