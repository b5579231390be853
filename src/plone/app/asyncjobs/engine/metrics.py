"""Prometheus metrics of this process's job dispatchers (Zope-free).

:func:`process_registry` is this process's own
:class:`prometheus_client.CollectorRegistry` (never prometheus_client's
global one, which other libraries of the process may fill), holding one
:class:`Collector`; :func:`exposition` renders it in the Prometheus text
format.  Workers serve it over HTTP (:mod:`plone.app.asyncjobs.worker.metrics`),
the monitor server as its ``metrics`` command.

Nothing is counted twice for Prometheus: the collector reads, when
scraped, what the dispatchers keep anyway: their statistics
(:attr:`.dispatcher.Dispatcher.statistics`), the counts and histograms of
the jobs they ran (:mod:`.jobmetrics`), their status and latest poll; the
commit conflicts of the process (:data:`.transactions.conflicts`); and the
number of jobs in each queue, read from the dispatchers' databases
(:func:`.listing.count_jobs`, which reads no pending job).

Label values are bounded: dispatcher UUIDs, queue, agent and database
names, callables' dotted names, class names, fixed words.  No job
argument, result or repr is exposed.  The list of metrics, with their
meaning, is in ``docs/metrics.rst``.
"""
import threading

import transaction
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import Metric

from plone.app.asyncjobs.engine import dispatcher as dispatcher_module
from plone.app.asyncjobs.engine import jobmetrics
from plone.app.asyncjobs.engine import transactions
from plone.app.asyncjobs.engine.listing import STATES
from plone.app.asyncjobs.engine.listing import count_jobs
from plone.app.asyncjobs.engine.log import trace
from plone.app.asyncjobs.engine.queue import KEY


#: ``(statistics key, metric name, help)`` of the dispatcher statistics
#: exposed as counters (labelled by dispatcher).
STATISTICS = (
    ("claims", "asyncjobs_claimed_jobs",
     "Jobs claimed by the dispatcher's worker threads"),
    ("empty claims", "asyncjobs_empty_claims",
     "Claims of the dispatcher's worker threads that found no job"),
    ("rings", "asyncjobs_rings",
     "Doorbell rings (commits that queued jobs) the dispatcher answered"),
    ("outcomes grouped", "asyncjobs_grouped_outcomes",
     "Job outcomes committed together with a later one (group commit)"),
    ("stranded jobs recovered", "asyncjobs_stranded_jobs_recovered",
     "Jobs held by no worker thread that the dispatcher handed to their retry policies"),
    ("siblings deactivated", "asyncjobs_siblings_deactivated",
     "Dead dispatchers this dispatcher found and deactivated"),
    ("worker thread errors", "asyncjobs_worker_thread_errors",
     "Unexpected errors in the dispatcher's worker threads"),
    ("jobs asked to stop at their time limit", "asyncjobs_jobs_timed_out",
     "Running jobs the dispatcher asked to stop because they reached their time limit"),
    ("jobs abandoned at their time limit", "asyncjobs_jobs_abandoned",
     "Timed-out jobs still running after their grace period, whose attempts "
     "the dispatcher abandoned (their threads replaced)"),
    ("jobs abandoned after a takeover", "asyncjobs_jobs_abandoned_taken_over",
     "Running jobs taken over elsewhere (this dispatcher was found dead) and still "
     "running a grace period after they were asked to stop, whose attempts the "
     "dispatcher abandoned (their threads replaced)"),
    ("abandoned threads interrupted", "asyncjobs_abandoned_threads_interrupted",
     "Interruptions raised in abandoned worker threads still running their "
     "timed-out jobs (again every grace period until the thread ends)"),
    ("jobs stopped as their lease lapsed", "asyncjobs_jobs_lease_lapsed",
     "Running jobs stopped and their attempts abandoned because the dispatcher's "
     "lease lapsed (paused or cut off longer than its death interval)"),
)

#: The statistics keys of claim conflicts, by the class of the conflicting object.
CLAIM_CONFLICTS_ON = "claim conflicts on "

#: ``(event, metric name, help)`` of the job counters (see :mod:`.jobmetrics`).
JOB_COUNTERS = (
    (jobmetrics.STARTED, "asyncjobs_jobs_started", "Jobs started by worker threads"),
    (jobmetrics.COMPLETED, "asyncjobs_jobs_completed",
     "Jobs that ended without a failure in a worker thread"),
    (jobmetrics.FAILED, "asyncjobs_jobs_failed",
     "Jobs that ended with a failure (not a cancellation) in a worker thread"),
    (jobmetrics.CANCELLED, "asyncjobs_jobs_cancelled",
     "Jobs that ended cancelled in a worker thread"),
    (jobmetrics.RETRIED, "asyncjobs_jobs_retried",
     "Failed attempts that the job's retry policy ran again, at once or rescheduled"),
)


class Collector:
    """Reads the metrics of ``dispatchers()`` (a callable returning
    dispatchers by UUID; default: those active in this process) when
    scraped.

    Collect from any thread but a dispatcher's reactor thread: the queue
    depths are read from the databases.
    """

    def __init__(self, dispatchers=dispatcher_module.active_dispatchers):
        self._dispatchers = dispatchers

    def describe(self):
        """The metric families, without samples and without reading anything."""
        return list(self._families([], read_databases=False))

    def collect(self):
        dispatchers = sorted(self._dispatchers().values(), key=lambda d: str(d.uuid))
        return self._families(dispatchers, read_databases=True)

    def _families(self, dispatchers, read_databases):
        yield from _job_counters(dispatchers)
        yield from _histograms(dispatchers)
        yield from _statistics(dispatchers)
        yield from _liveness(dispatchers)
        yield from _agents(dispatchers)
        yield _queue_jobs(dispatchers if read_databases else [])
        yield _commit_conflicts()


def _job_counters(dispatchers):
    labels = ("dispatcher", "queue", "callable")
    for event, name, documentation in JOB_COUNTERS:
        family = CounterMetricFamily(name, documentation, labels=labels)
        for dispatcher in dispatchers:
            counts = dispatcher.metrics.counts.snapshot()
            for (counted, queue, function), count in sorted(counts.items()):
                if counted == event:
                    family.add_metric((str(dispatcher.uuid), queue, function), count)
        yield family


def _histograms(dispatchers):
    """The run-time and pickup-latency histograms of all dispatchers, each
    as one family (every dispatcher keeps its own)."""
    for attribute, name, documentation in (
            ("run_time", *jobmetrics.RUN_TIME), ("pickup_latency", *jobmetrics.PICKUP_LATENCY)):
        family = Metric(name, documentation, "histogram")
        for dispatcher in dispatchers:
            for collected in getattr(dispatcher.metrics, attribute).collect():
                family.samples.extend(collected.samples)
        yield family


def _statistics(dispatchers):
    snapshots = [(str(dispatcher.uuid), dispatcher.statistics.snapshot())
                 for dispatcher in dispatchers]
    for key, name, documentation in STATISTICS:
        family = CounterMetricFamily(name, documentation, labels=("dispatcher",))
        for uuid, counts in snapshots:
            family.add_metric((uuid,), counts.get(key, 0))
        yield family
    family = CounterMetricFamily(
        "asyncjobs_claim_conflicts",
        "Claims that conflicted, by the class of the object both transactions changed",
        labels=("dispatcher", "object_class"))
    for uuid, counts in snapshots:
        for key, count in sorted(counts.items()):
            if key.startswith(CLAIM_CONFLICTS_ON):
                family.add_metric((uuid, key[len(CLAIM_CONFLICTS_ON):]), count)
    yield family


def _liveness(dispatchers):
    up = GaugeMetricFamily(
        "asyncjobs_dispatcher_up",
        "1 while the dispatcher polls (RUNNING), 0 while STARTING or STUCK "
        "(no poll for two poll intervals)", labels=("dispatcher",))
    since = GaugeMetricFamily(
        "asyncjobs_dispatcher_seconds_since_poll",
        "Seconds since the dispatcher's latest poll", labels=("dispatcher",))
    for dispatcher in dispatchers:
        uuid = str(dispatcher.uuid)
        info = dispatcher.status_info()
        up.add_metric((uuid,), 1 if info["status"] == dispatcher_module.RUNNING else 0)
        if info["time since last poll"] is not None:
            since.add_metric((uuid,), info["time since last poll"].total_seconds())
    yield up
    yield since


def _agents(dispatchers):
    labels = ("dispatcher", "queue", "agent")
    size = GaugeMetricFamily(
        "asyncjobs_agent_size", "Jobs the agent runs at once (its size)", labels=labels)
    paused = GaugeMetricFamily(
        "asyncjobs_agent_paused", "1 if the agent's dispatcher is paused in its queue",
        labels=labels)
    held = GaugeMetricFamily(
        "asyncjobs_agent_held_jobs", "Jobs the agent held at the dispatcher's latest poll",
        labels=labels)
    running = GaugeMetricFamily(
        "asyncjobs_agent_running_jobs", "Jobs the agent's worker threads run now",
        labels=labels)
    for dispatcher in dispatchers:
        latest = next(dispatcher.iter_polls(), None)
        for queue, agents in sorted((latest or {}).items()):
            for agent, details in sorted((agents or {}).items()):
                key = (str(dispatcher.uuid), queue, agent)
                size.add_metric(key, details["size"])
                paused.add_metric(key, 1 if details["paused"] else 0)
                held.add_metric(key, details["len"])
                running.add_metric(key, len(dispatcher.active_job_ids(queue, agent)))
    yield from (size, paused, held, running)


def _queue_jobs(dispatchers):
    family = GaugeMetricFamily(
        "asyncjobs_queue_jobs",
        "Jobs of the queue by state: pending, active (held by an agent), and the "
        "completed and failed ones its histories keep",
        labels=("database", "queue", "state"))
    databases = {id(dispatcher.db): dispatcher.db for dispatcher in dispatchers}
    for db in databases.values():
        try:
            counts = _count_queue_jobs(db)
        except Exception:
            # The storage may be away: the other metrics still tell why.
            trace.warning("metrics: cannot count the jobs of database %r", db.database_name,
                          exc_info=True)
            continue
        for queue, states in sorted(counts.items()):
            for state in STATES:
                family.add_metric((db.database_name, queue, state), states[state])
    return family


def _count_queue_jobs(db):
    """``{queue name: {state: count}}`` of ``db``, read without writing."""
    manager = transaction.TransactionManager()
    connection = db.open(transaction_manager=manager)
    try:
        queues = connection.root().get(KEY)
        return {name: count_jobs(queue) for name, queue in (queues or {}).items()}
    finally:
        manager.abort()
        connection.close()


def _commit_conflicts():
    family = CounterMetricFamily(
        "asyncjobs_commit_conflicts",
        "Commits of this process that conflicted (claims apart): the engine's "
        "bookkeeping, or the storing of a job's outcome", labels=("commit",))
    counts = transactions.conflicts.snapshot()
    for where in (transactions.BOOKKEEPING, transactions.OUTCOME):
        family.add_metric((where,), counts.get(where, 0))
    return family


_registry = None
_registry_lock = threading.Lock()


def process_registry():
    """This process's registry of asyncjobs metrics (made on first use)."""
    global _registry
    with _registry_lock:
        if _registry is None:
            registry = CollectorRegistry()
            registry.register(Collector())
            _registry = registry
        return _registry


def exposition(registry=None):
    """The metrics of ``registry`` (default: :func:`process_registry`) in
    the Prometheus text format, as ``str``."""
    return generate_latest(registry or process_registry()).decode("utf-8")
