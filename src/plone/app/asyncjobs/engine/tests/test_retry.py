"""Retry policies: conflicts, other errors, delayed retries, deadlines, factories."""
import functools
import uuid
from datetime import timedelta

import pytest
from ZODB.POSException import ConflictError

from plone.app.asyncjobs.engine import configure
from plone.app.asyncjobs.engine import retry
from plone.app.asyncjobs.engine import status
from plone.app.asyncjobs.engine.exceptions import AbortedError
from plone.app.asyncjobs.engine.job import Job
from plone.app.asyncjobs.engine.retry import DelayedRetry
from plone.app.asyncjobs.engine.retry import NeverRetry
from plone.app.asyncjobs.engine.retry import RetryCommonForever
from plone.app.asyncjobs.engine.retry import RetryCommonFourTimes
from plone.app.asyncjobs.engine.testing.waiting import wait_for_result
from plone.app.asyncjobs.engine.tests import jobs
from plone.app.asyncjobs.engine.tests.support import commit
from plone.app.asyncjobs.engine.tests.support import sync


class Custom(NeverRetry):
    """A policy class of this test module."""


def put(queue, job, **options):
    job = queue.put(job, **options)
    commit(queue)
    return job


# -- through a worker ---------------------------------------------------------------

def test_the_default_policy_retries_conflicts_up_to_five_attempts(dispatcher, queue):
    job = put(queue, Job(jobs.conflict_times, "c", 99))
    result = wait_for_result(job)
    assert result.check(ConflictError)
    assert jobs.calls["c"] == 5
    policy = job.get_retry_policy()
    assert type(policy) is RetryCommonFourTimes
    assert policy.data["transaction_error"] == 5


def test_the_default_policy_succeeds_after_a_few_conflicts(dispatcher, queue):
    job = put(queue, Job(jobs.conflict_times, "c", 2))
    assert wait_for_result(job) == "done"
    assert jobs.calls["c"] == 3
    assert job.attempts == 3  # retried in the same worker; every run counts
    assert job.get_retry_policy().data["transaction_error"] == 2
    assert job.get_retry_policy().data["first_active"] == job.active_start


def test_the_default_policy_does_not_retry_other_errors(dispatcher, queue):
    job = put(queue, Job(jobs.fail_times, "f", 1))
    assert wait_for_result(job).check(ValueError)
    assert jobs.calls["f"] == 1


def test_a_conflict_at_commit_reruns_the_job(dispatcher, queue, conn):
    counter = conn.root()["counter"] = jobs.Counter()
    commit(queue)
    job = put(queue, Job(jobs.conflicting_write, counter, "w"))
    # 0 + 100 (the other transaction) + 1 (the second attempt)
    assert wait_for_result(job) == 101
    assert jobs.calls["w"] == 2
    sync(counter)
    assert counter.value == 101
    assert job.get_retry_policy().data["transaction_error"] == 1


def test_never_retry_gives_up_at_the_first_conflict(dispatcher, queue):
    job = put(queue, Job(jobs.conflict_times, "c", 1), retry_policy_factory="never")
    assert wait_for_result(job).check(ConflictError)
    assert jobs.calls["c"] == 1
    assert type(job.get_retry_policy()) is NeverRetry


def test_retry_common_forever_retries_conflicts_past_five(dispatcher, queue):
    job = put(queue, Job(jobs.conflict_times, "c", 7), retry_policy_factory=RetryCommonForever)
    assert wait_for_result(job) == "done"
    assert jobs.calls["c"] == 8


def test_retry_common_forever_does_not_retry_errors_of_the_callable(dispatcher, queue):
    job = put(queue, Job(jobs.fail_times, "f", 1), retry_policy_factory="forever")
    assert wait_for_result(job).check(ValueError)
    assert jobs.calls["f"] == 1


def test_delayed_retry_in_a_worker_gives_up_after_max_attempts(dispatcher, queue):
    factory = functools.partial(DelayedRetry, max_attempts=3, base_delay=0.05, jitter=0)
    job = put(queue, Job(jobs.fail_times, "f", 99), retry_policy_factory=factory)
    result = wait_for_result(job)
    assert result.check(ValueError)
    assert result.getErrorMessage() == "failure 3 of f"
    assert jobs.calls["f"] == 3
    assert job.attempts == 3


def test_delayed_retry_in_a_worker_succeeds_when_the_error_goes_away(dispatcher, queue):
    factory = functools.partial(DelayedRetry, base_delay=0.05)
    job = put(queue, Job(jobs.fail_times, "f", 2), retry_policy_factory=factory)
    assert wait_for_result(job) == "done"
    assert jobs.calls["f"] == 3


# -- step by step, with the testing clock ----------------------------------------

def test_delayed_retry_reschedules_with_exponential_backoff(queue, record, clock):
    dispatcher_record = record()
    agent = dispatcher_record["main"]
    factory = functools.partial(
        DelayedRetry, max_attempts=4, base_delay=10, factor=2, jitter=0.1
    )
    job = put(queue, Job(jobs.fail_times, "f", 99), retry_policy_factory=factory)
    for retry_number in (1, 2, 3):
        assert agent.claim_job() is job
        failed_at = clock.now
        assert job() is job  # rescheduled, not failed
        assert job.status == status.PENDING and job.result is None
        assert len(agent) == 0 and len(queue) == 1
        expected = 10 * 2 ** (retry_number - 1)
        delay = (job.begin_after - failed_at).total_seconds()
        assert expected * 0.9 <= delay <= expected * 1.1
        clock.set(job.begin_after - timedelta(microseconds=1))
        queue.dispatchers.ping(dispatcher_record.UUID)
        assert agent.claim_job() is None  # not due yet
        clock.advance(microseconds=1)
    assert agent.claim_job() is job
    result = job()
    assert result.check(ValueError)
    assert result.getErrorMessage() == "failure 4 of f"
    assert job.status == status.COMPLETED
    assert jobs.calls["f"] == 4
    assert job.attempts == 4


def test_delayed_retry_waits_at_most_max_delay():
    policy = DelayedRetry(None, base_delay=10, factor=10, max_delay=60, jitter=0)
    assert [policy.delay(n) for n in (1, 2, 3)] == [10, 60, 60]


def test_delayed_retry_waits_max_delay_after_thousands_of_attempts():
    # The growth overflowed a float at retry 1025: the job's own error was
    # replaced by an OverflowError.
    policy = DelayedRetry(None, base_delay=0.001, max_delay=0.5, jitter=0)
    assert [policy.delay(n) for n in (1025, 10**6)] == [0.5, 0.5]
    assert DelayedRetry(None, factor=2**70, max_delay=60, jitter=0).delay(30) == 60


@pytest.mark.parametrize("settings, error, message", [
    ({"max_attempts": 0}, ValueError, "max_attempts must be at least 1"),
    ({"max_attempts": 2.5}, TypeError, "max_attempts must be an integer"),
    ({"base_delay": "10"}, TypeError, "base_delay must be a number"),
    ({"base_delay": -100}, ValueError, "base_delay must be from 0"),
    ({"max_delay": float("nan")}, ValueError, "max_delay must be a finite number"),
    ({"max_delay": 1e12}, ValueError, "max_delay must be from 0 to"),
    ({"factor": 0.5}, ValueError, "factor must be at least 1"),
    ({"jitter": 1}, ValueError, "jitter must be a fraction"),
    ({"jitter": True}, TypeError, "jitter must be a number"),
])
def test_delayed_retry_settings_are_checked_where_they_are_given(queue, settings, error,
                                                                 message):
    # Before, they were first used at the job's first failure, in the
    # worker, and their error replaced the job's own.
    with pytest.raises(error, match=message):
        DelayedRetry(None, **settings)
    factory = functools.partial(DelayedRetry, **settings)
    with pytest.raises(error, match=message):
        put(queue, Job(jobs.echo, 1), retry_policy_factory=factory)
    job = Job(jobs.echo, 1)
    job.retry_policy_factory = factory
    with pytest.raises(error, match=message):
        put(queue, job)
    assert len(queue) == 0
    # Only where they are given: a job stored before the check (with such
    # settings) still resolves its policy in a worker, as before.
    assert retry.resolve(factory) is factory


class NotifyingRetry(DelayedRetry):
    """A subclass with a setting of its own, unknown to its base's check."""

    def __init__(self, job, recipient=None, **settings):
        super().__init__(job, **settings)
        self.recipient = recipient


def test_settings_are_checked_by_the_class_that_defines_the_check(queue):
    factory = functools.partial(NotifyingRetry, recipient="ops@example.org", max_attempts=3)
    job = put(queue, Job(jobs.echo, 1), retry_policy_factory=factory)
    assert job.get_retry_policy().recipient == "ops@example.org"


def test_settings_given_by_position_are_refused_at_put(queue):
    # The policy is made with the job first: 3 would be the job.
    with pytest.raises(TypeError, match="as keyword arguments"):
        put(queue, Job(jobs.echo, 1), retry_policy_factory=functools.partial(DelayedRetry, 3))


def test_a_job_past_its_deadline_is_not_retried(queue, record, clock):
    agent = record()["main"]
    job = put(
        queue, Job(jobs.advance_clock_and_conflict, "c", 2), begin_by=timedelta(minutes=1)
    )
    assert agent.claim_job() is job
    result = job()
    assert result.check(ConflictError)
    assert jobs.calls["c"] == 1
    assert job.status == status.COMPLETED


def test_a_delayed_retry_is_not_scheduled_past_the_deadline(queue, record, clock):
    agent = record()["main"]
    job = put(
        queue, Job(jobs.fail_times, "f", 99),
        begin_by=timedelta(seconds=5), retry_policy_factory="delayed",
    )
    assert agent.claim_job() is job
    clock.advance(seconds=6)
    assert job().check(ValueError)
    assert jobs.calls["f"] == 1
    assert job.status == status.COMPLETED


# -- choosing the policy -------------------------------------------------------------

@pytest.mark.parametrize("factory, expected", [
    (None, RetryCommonFourTimes),
    ("never", NeverRetry),
    ("default", RetryCommonFourTimes),
    ("forever", RetryCommonForever),
    ("delayed", DelayedRetry),
    (Custom, Custom),
    (functools.partial(DelayedRetry, max_attempts=7, base_delay=1), DelayedRetry),
])
def test_retry_policy_factories_are_names_classes_or_partials(
    queue, connect, factory, expected
):
    job = put(queue, Job(jobs.echo, 1), retry_policy_factory=factory)
    policy = job.get_retry_policy()
    assert type(policy) is expected and policy.job is job
    commit(queue)
    stored = connect().get(job._p_oid)
    assert type(stored.get_retry_policy()) is expected
    if isinstance(factory, functools.partial):
        assert (stored.get_retry_policy().max_attempts, policy.base_delay) == (7, 1)


def test_an_unknown_policy_name_is_refused_at_put(queue):
    with pytest.raises(ValueError, match="unknown retry policy 'sometimes'; registered: "):
        queue.put(Job(jobs.echo, 1), retry_policy_factory="sometimes")
    with pytest.raises(TypeError, match="retry_policy_factory must be callable or a name"):
        queue.put(Job(jobs.echo, 1), retry_policy_factory=42)
    assert len(queue) == 0


def test_registered_names_and_process_defaults(queue, monkeypatch):
    monkeypatch.setattr(retry, "_registry", dict(retry._registry))
    monkeypatch.setattr(retry, "defaults", dict(retry.defaults))
    retry.register("custom", Custom)
    assert type(put(queue, Job(jobs.echo, 1), retry_policy_factory="custom")
                .get_retry_policy()) is Custom
    with pytest.raises(TypeError, match="must be callable"):
        retry.register("broken", 42)

    retry.set_default(Custom)
    assert type(put(queue, Job(jobs.echo, 1)).get_retry_policy()) is Custom
    callback = Job(jobs.echo, 1).add_callback(Job(jobs.echo))
    assert type(callback.get_retry_policy()) is RetryCommonForever
    retry.set_default(Custom, kind="callback")
    assert type(Job(jobs.echo, 1).add_callback(Job(jobs.echo)).get_retry_policy()) is Custom
    retry.set_default(None)
    assert retry.defaults["job"] is RetryCommonFourTimes
    with pytest.raises(ValueError, match="kind must be 'job' or 'callback'"):
        retry.set_default(Custom, kind="other")


def test_the_policy_is_created_once_and_kept(queue):
    job = put(queue, Job(jobs.echo, 1), retry_policy_factory="never")
    policy = job.get_retry_policy()
    job.retry_policy_factory = "forever"
    assert job.get_retry_policy() is policy


def test_interruptions_are_counted_by_the_default_policy(queue, record, clock):
    alive = record(uuid.UUID(int=1))
    dying = record(uuid.UUID(int=2))
    job = put(queue, Job(jobs.echo, 1))
    for interruption in range(1, RetryCommonFourTimes.max_interruptions + 2):
        if not dying.activated:
            dying.activate()
        assert dying["main"].claim_job() is job
        job.mark_active()
        commit(queue)
        clock.advance(seconds=61)
        assert queue.dispatchers.ping(alive.UUID) == dying.UUID
        commit(queue)
        assert job.get_retry_policy().data["interruptions"] == interruption
        if interruption <= RetryCommonFourTimes.max_interruptions:
            assert job.status == status.PENDING and queue[0] is job
    assert job.status == status.COMPLETED
    assert job.result.check(AbortedError)
    assert job.attempts == 10
    assert configure.get_queue(queue._p_jar) is queue
