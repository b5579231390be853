"""Prometheus metrics: the collector reads the dispatchers when scraped."""
import functools
from datetime import timedelta

import prometheus_client
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from ZODB.POSException import ConflictError

from plone.app.asyncjobs.engine import metrics
from plone.app.asyncjobs.engine import transactions
from plone.app.asyncjobs.engine.clock import utcnow
from plone.app.asyncjobs.engine.exceptions import CancelledError
from plone.app.asyncjobs.engine.job import Job
from plone.app.asyncjobs.engine.naming import callable_name
from plone.app.asyncjobs.engine.retry import DelayedRetry
from plone.app.asyncjobs.engine.testing.waiting import wait_for_result
from plone.app.asyncjobs.engine.testing.waiting import wait_for_start
from plone.app.asyncjobs.engine.testing.waiting import wait_until
from plone.app.asyncjobs.engine.tests import jobs
from plone.app.asyncjobs.engine.tests.support import commit


JOBS = "plone.app.asyncjobs.engine.tests.jobs"


def gives_up():
    """A job that ends cancelled (as one honouring a cancel request does)."""
    raise CancelledError("asked to stop")


class CallableObject:
    def __call__(self):
        return None


def put(queue, job, **options):
    job = queue.put(job, **options)
    commit(queue)
    return job


@pytest.fixture
def scrape():
    """Scrape a private registry holding a collector of this process's
    dispatchers: ``{(name, frozenset(labels.items())): value}``."""
    registry = CollectorRegistry()
    registry.register(metrics.Collector())

    def read():
        text = metrics.exposition(registry)
        return {(sample.name, frozenset(sample.labels.items())): sample.value
                for family in text_string_to_metric_families(text)
                for sample in family.samples}

    return read


def value(samples, name, **labels):
    """The value of the sample ``name`` whose labels include ``labels``;
    0 when there is none (a counter not counted yet)."""
    found = [v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= ls]
    assert len(found) <= 1, f"{name} {labels} is ambiguous: {found}"
    return found[0] if found else 0


def test_callable_names_are_dotted_names_whatever_the_arguments_or_instance():
    assert callable_name(jobs.add) == f"{JOBS}.add"
    assert callable_name(jobs.Counter().increment) == f"{JOBS}.Counter.increment"
    assert callable_name(CallableObject()) == f"{__name__}.CallableObject"
    assert callable_name(functools.partial(jobs.add, 1)) == "functools.partial"


def test_jobs_are_counted_by_queue_and_callable_with_their_outcomes(dispatcher, queue, scrape):
    uuid = str(dispatcher.uuid)
    delayed = functools.partial(DelayedRetry, base_delay=0.05, jitter=0)
    queued = [
        put(queue, Job(jobs.add, 1, 2)),
        put(queue, Job(jobs.boom, "bad")),
        put(queue, Job(gives_up)),
        put(queue, Job(jobs.conflict_times, "c", 2)),  # rerun twice at once
        put(queue, Job(jobs.fail_times, "f", 1), retry_policy_factory=delayed),  # rescheduled
    ]
    for job in queued:
        wait_for_result(job)
    # The counts follow the outcome's commit.
    wait_until(lambda: value(scrape(), "asyncjobs_jobs_completed_total",
                             callable=f"{JOBS}.fail_times") == 1)
    samples = scrape()

    def count(event, function):
        return value(samples, f"asyncjobs_jobs_{event}_total",
                     dispatcher=uuid, queue="", callable=function)

    assert [count("started", f"{JOBS}.{name}") for name in ("add", "boom", "conflict_times")] \
        == [1, 1, 1]
    assert count("started", f"{JOBS}.fail_times") == 2  # rescheduled: started again
    assert count("completed", f"{JOBS}.add") == 1
    assert count("failed", f"{JOBS}.boom") == 1
    assert count("failed", f"{__name__}.gives_up") == 0
    assert count("cancelled", f"{__name__}.gives_up") == 1
    assert count("retried", f"{JOBS}.conflict_times") == 2
    assert count("completed", f"{JOBS}.conflict_times") == 1
    assert count("retried", f"{JOBS}.fail_times") == 1
    assert count("completed", f"{JOBS}.fail_times") == 1
    assert count("retried", f"{JOBS}.add") == 0

    assert value(samples, "asyncjobs_job_run_seconds_count", dispatcher=uuid, queue="",
                 callable=f"{JOBS}.fail_times") == 2
    assert value(samples, "asyncjobs_job_run_seconds_bucket", dispatcher=uuid, queue="",
                 callable=f"{JOBS}.add", le="+Inf") == 1
    picked_up = sum(v for (name, _), v in samples.items()
                    if name == "asyncjobs_job_pickup_latency_seconds_count")
    assert picked_up == 6
    for (name, labels), _ in samples.items():
        if name.startswith("asyncjobs_job_pickup_latency_seconds"):
            assert dict(labels)["pickup"] in ("push", "timer", "poll", "next")


def test_queue_depths_agents_and_liveness(dispatcher, queue, db, scrape):
    uuid = str(dispatcher.uuid)
    blocked = put(queue, Job(jobs.wait_for_event, "blocked", "b"))
    wait_for_start(blocked)
    later = utcnow() + timedelta(hours=1)
    for number in range(2):
        put(queue, Job(jobs.add, number, 1), begin_after=later)
    wait_until(lambda: value(scrape(), "asyncjobs_agent_running_jobs", queue="") == 1)
    samples = scrape()

    def depth(state, name=""):
        return value(samples, "asyncjobs_queue_jobs", database=db.database_name, queue=name,
                     state=state)

    assert (depth("pending"), depth("active"), depth("pending", "other")) == (2, 1, 0)
    agent = {"dispatcher": uuid, "queue": "", "agent": "main"}
    assert value(samples, "asyncjobs_agent_size", **agent) == 3
    assert value(samples, "asyncjobs_agent_paused", **agent) == 0
    assert value(samples, "asyncjobs_dispatcher_up", dispatcher=uuid) == 1
    assert value(samples, "asyncjobs_dispatcher_seconds_since_poll", dispatcher=uuid) >= 0
    jobs.event("blocked").set()
    wait_for_result(blocked)


def test_claim_conflicts_by_class_and_commit_conflicts(dispatcher, queue, conn, scrape):
    uuid = str(dispatcher.uuid)
    before = scrape()
    # Claim conflicts cannot be caused at will: count one as a claim does.
    dispatcher.statistics.add("claim conflicts on BTrees.LOBTree.LOBTree")
    counter = conn.root()["counter"] = jobs.Counter()
    commit(queue)
    # Its first outcome commit conflicts, and the job runs again.
    job = put(queue, Job(jobs.conflicting_write, counter, "w"))
    assert wait_for_result(job) == 101
    calls = []

    def conflicts_once():
        calls.append(1)
        if len(calls) == 1:
            raise ConflictError("a concurrent change")

    transactions.retry_conflicts(conflicts_once, conn.transaction_manager, "a test")
    after = scrape()

    def grown(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert grown("asyncjobs_claim_conflicts_total", dispatcher=uuid,
                 object_class="BTrees.LOBTree.LOBTree") == 1
    assert grown("asyncjobs_commit_conflicts_total", commit="outcome") >= 1
    assert grown("asyncjobs_commit_conflicts_total", commit="bookkeeping") >= 1
    assert value(after, "asyncjobs_jobs_retried_total", dispatcher=uuid,
                 callable=f"{JOBS}.conflicting_write") == 1


def test_the_process_registry_is_its_own(dispatcher):
    registry = metrics.process_registry()
    assert registry is metrics.process_registry()
    assert registry is not prometheus_client.REGISTRY
    assert "asyncjobs_jobs_started_total" not in prometheus_client.generate_latest().decode()
    text = metrics.exposition()
    assert f'asyncjobs_dispatcher_up{{dispatcher="{dispatcher.uuid}"}}' in text


def test_describing_reads_no_dispatcher():
    def unreadable():
        raise AssertionError("describe must not read the dispatchers")

    names = {family.name for family in metrics.Collector(unreadable).describe()}
    assert {"asyncjobs_jobs_started", "asyncjobs_job_run_seconds",
            "asyncjobs_queue_jobs", "asyncjobs_commit_conflicts"} <= names
