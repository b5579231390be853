"""Jobs: statuses, results, callbacks, scheduling, hooks and special callables."""
import logging
from datetime import datetime
from datetime import timedelta
from datetime import timezone

import pytest
import zope.event
from persistent.list import PersistentList

from plone.app.asyncjobs.engine import status
from plone.app.asyncjobs.engine.callback import SuccessFailureCallback
from plone.app.asyncjobs.engine.clock import now_microseconds
from plone.app.asyncjobs.engine.clock import to_microseconds
from plone.app.asyncjobs.engine.clock import utcnow
from plone.app.asyncjobs.engine.configure import get_queue
from plone.app.asyncjobs.engine.events import JobCompleted
from plone.app.asyncjobs.engine.exceptions import BadStatusError
from plone.app.asyncjobs.engine.exceptions import TimeoutError
from plone.app.asyncjobs.engine.failure import UnpicklableError
from plone.app.asyncjobs.engine.failure import is_failure
from plone.app.asyncjobs.engine.job import Job
from plone.app.asyncjobs.engine.retry import RetryCommonForever
from plone.app.asyncjobs.engine.retry import RetryCommonFourTimes
from plone.app.asyncjobs.engine.testing.waiting import wait_for_poll
from plone.app.asyncjobs.engine.testing.waiting import wait_for_result
from plone.app.asyncjobs.engine.testing.waiting import wait_for_start
from plone.app.asyncjobs.engine.testing.waiting import wait_until
from plone.app.asyncjobs.engine.tests import jobs
from plone.app.asyncjobs.engine.tests.support import commit
from plone.app.asyncjobs.engine.tests.support import sync


def put(queue, job, **options):
    job = queue.put(job, **options)
    commit(queue)
    return job


# -- without a database ----------------------------------------------------------

def test_a_new_job_knows_its_call_and_nothing_else():
    job = Job(jobs.add, 1, b=2)
    assert job.status == status.NEW
    assert job.result is None
    assert job.callable is jobs.add
    assert list(job.args) == [1] and dict(job.kwargs) == {"b": 2}
    assert list(job.callbacks) == []
    assert job.queue is None and job.agent is None
    assert job.attempts == 0 and job.active_start is None
    assert repr(job) == (
        "<plone.app.asyncjobs.engine.job.Job (unsaved) "
        "``plone.app.asyncjobs.engine.tests.jobs.add(1, b=2)``>"
    )


def test_calling_an_unstored_job_runs_it_here_with_extra_arguments():
    job = Job(jobs.add, 1)
    assert job(2) == 3
    assert job.status == status.COMPLETED
    assert job.result == 3
    assert job.attempts == 1
    assert job.active_start <= job.active_end
    with pytest.raises(BadStatusError, match="only a new or assigned job"):
        job()


def test_bind_passes_the_job_itself_first():
    job = Job.bind(jobs.echo)
    assert job() is job


def test_fail_gives_a_new_job_a_timeout_failure_and_runs_its_callbacks():
    job = Job(jobs.add, 1, 2)
    callback = job.add_callback(Job(jobs.describe))
    job.fail()
    assert job.status == status.COMPLETED
    assert job.result.check(TimeoutError)
    assert callback.result == "failure: TimeoutError: "
    with pytest.raises(BadStatusError, match="cannot fail a completed job"):
        job.fail()


# -- statuses and results in a database ---------------------------------------------

def test_statuses_new_pending_assigned_active_completed(queue, record, connect):
    dispatcher_record = record()
    agent = dispatcher_record["main"]
    job = Job(jobs.add, 1, 2)
    assert job.status == status.NEW
    queue.put(job)
    assert job.status == status.PENDING
    assert job.queue is queue and job.agent is None
    commit(queue)
    seen = get_queue(connect())[0]
    assert seen.status == status.PENDING

    assert agent.claim_job() is job
    assert job.status == status.ASSIGNED
    assert job.agent is agent and job.queue is queue
    assert len(queue) == 0 and list(agent) == [job]
    commit(queue)
    sync(seen)
    assert seen.status == status.ASSIGNED

    assert job() == 3
    sync(seen)
    assert seen.status == status.COMPLETED and seen.result == 3
    # Completing writes only the job; the agent's sweep moves it to the history.
    assert agent.sweep() == 1
    assert job in agent.completed and len(agent) == 0
    assert job.active_start is not None and job.active_end >= job.active_start


def test_a_worker_shows_active_then_callbacks_then_completed(dispatcher, queue):
    job = Job(jobs.wait_for_event, "run", 5)
    callback = job.add_callback(Job(jobs.wait_for_event, "callback"))
    queue.put(job)
    assert job.status == status.PENDING
    commit(queue)  # a worker may start it at once: no status check until it has

    wait_for_start(job)
    assert job.status == status.ACTIVE
    assert job.result is None and job.attempts == 1
    assert job.active_start is not None and job.active_end is None

    jobs.event("run").set()
    wait_until(lambda: job.status == status.CALLBACKS, sync=lambda: sync(job))
    assert job.result == 5 and job.active_end is not None
    assert callback.status == status.ACTIVE

    jobs.event("callback").set()
    assert wait_for_result(job) == 5
    assert callback.status == status.COMPLETED and callback.result == 5
    agent = queue.dispatchers[dispatcher.uuid]["main"]
    wait_until(lambda: job in agent.completed, sync=lambda: sync(job))
    assert len(agent) == 0


@pytest.mark.parametrize("value", [None, 0, "text", (1, "two"), {"a": [1, 2]}])
def test_results_are_stored(dispatcher, queue, connect, value):
    job = put(queue, Job(jobs.echo, value))
    assert wait_for_result(job) == value
    other = connect()
    assert other.get(job._p_oid).result == value


def test_a_failure_is_the_result_and_the_callables_changes_are_aborted(
    dispatcher, queue, conn
):
    counter = conn.root()["counter"] = jobs.Counter()
    commit(queue)
    job = put(queue, Job(jobs.increment_then_fail, counter))
    result = wait_for_result(job)
    assert is_failure(result)
    assert result.check(ValueError)
    assert result.getErrorMessage() == "changed the counter, then failed"
    sync(counter)
    assert counter.value == 0


def test_a_result_that_cannot_be_stored_becomes_a_failure(dispatcher, queue):
    job = put(queue, Job(jobs.make_lock))
    result = wait_for_result(job)
    assert is_failure(result)
    assert "lock" in result.getErrorMessage()


def test_job_completed_event_is_notified(dispatcher, queue, monkeypatch):
    seen = []

    def subscriber(event):
        if isinstance(event, JobCompleted):
            seen.append((event.object._p_oid, event.object.status))

    monkeypatch.setattr(zope.event, "subscribers", zope.event.subscribers + [subscriber])
    job = put(queue, Job(jobs.add, 2, 2))
    wait_for_result(job)
    assert (job._p_oid, status.COMPLETED) in seen


# -- callbacks ---------------------------------------------------------------------

def test_callbacks_all_get_the_parents_result_not_a_chain(dispatcher, queue):
    job = Job(jobs.add, 2, 3)
    doubled = job.add_callback(Job(jobs.double))
    echoed = job.add_callback(jobs.echo)
    assert isinstance(echoed, Job)
    assert echoed.failure_log_level == logging.CRITICAL
    put(queue, job)
    assert wait_for_result(job) == 5
    assert doubled.result == 10
    assert echoed.result == 5
    assert list(job.callbacks) == [doubled, echoed]
    # Exact classes: every policy is a subclass of the one it extends.
    assert type(doubled.get_retry_policy()) is RetryCommonForever
    assert type(job.get_retry_policy()) is RetryCommonFourTimes


def written_by(db, tid):
    """``{oid}`` of the objects each transaction after ``tid`` wrote, in order."""
    return [{record.oid for record in txn} for txn in db.storage.iterator(start=tid)
            if txn.tid != tid]


def test_a_worker_starts_a_callback_with_the_outcome_and_completes_the_job_with_its_own(
        db, dispatcher, queue):
    # Two commits for a job and its callback, not four: the start of the
    # callback is in the commit of the job's outcome, the job's completion
    # in the commit of the callback's outcome.
    job = Job(jobs.add, 2, 3)
    callback = job.add_callback(Job(jobs.double))
    put(queue, job)
    queued_in = job._p_serial
    assert wait_for_result(job) == 5
    assert callback.result == 10 and callback.attempts == 1
    wrote_callback = [oids for oids in written_by(db, queued_in) if callback._p_oid in oids]
    assert len(wrote_callback) == 2
    assert all(job._p_oid in oids for oids in wrote_callback)


def test_a_callback_list_stored_by_an_earlier_version_still_works(dispatcher, queue):
    job = Job(jobs.add, 1, 2)
    first = job.add_callback(Job(jobs.double))
    job._callbacks = PersistentList(job._callbacks)  # as earlier versions stored it
    second = job.add_callback(Job(jobs.describe))
    put(queue, job)
    assert wait_for_result(job) == 3
    assert job.callbacks == (first, second)
    assert (first.result, second.result) == (6, "success: 3")


def test_callbacks_of_callbacks_get_their_parents_result(dispatcher, queue):
    job = Job(jobs.add, 1, 1)
    first = job.add_callback(Job(jobs.double))
    second = first.add_callback(Job(jobs.double))
    third = second.add_callback(Job(jobs.describe))
    put(queue, job)
    wait_for_result(job)
    assert (first.result, second.result, third.result) == (4, 8, "success: 8")
    assert third.status == status.COMPLETED


def test_a_failing_callback_does_not_change_the_parent(dispatcher, queue):
    job = Job(jobs.add, 1, 1)
    callback = job.add_callback(Job(jobs.boom))
    put(queue, job)
    assert wait_for_result(job) == 2
    assert callback.status == status.COMPLETED
    assert callback.result.check(ValueError)


@pytest.mark.parametrize("callable_, expected_side", [
    (jobs.add, "success"),
    (jobs.boom, "failure"),
])
def test_add_callbacks_runs_the_matching_side(dispatcher, queue, callable_, expected_side):
    job = Job(callable_, 20, 1) if callable_ is jobs.add else Job(callable_)
    proxy = job.add_callbacks(Job(jobs.counted, "success"), Job(jobs.describe))
    assert isinstance(proxy, SuccessFailureCallback)
    assert proxy.status == status.NEW and proxy.job is None
    put(queue, job)
    wait_for_result(job)
    sync(proxy)
    assert proxy.job is (proxy.success if expected_side == "success" else proxy.failure)
    assert proxy.status == status.COMPLETED
    if expected_side == "success":
        assert jobs.calls["success"] == 1
        assert proxy.result == 21  # counted returns the result it was given
    else:
        assert jobs.calls["success"] == 0
        assert proxy.result == "failure: ValueError: boom"


@pytest.mark.parametrize("callable_", [jobs.add, jobs.boom])
def test_a_missing_side_of_add_callbacks_passes_the_result_through(
    dispatcher, queue, callable_
):
    job = Job(callable_, 20, 1) if callable_ is jobs.add else Job(callable_)
    # The side that is given never matches, so the pass-through runs.
    if callable_ is jobs.add:
        proxy = job.add_callbacks(failure=Job(jobs.counted, "failure"))
    else:
        proxy = job.add_callbacks(success=Job(jobs.counted, "success"))
    after = proxy.add_callback(Job(jobs.describe))
    put(queue, job)
    result = wait_for_result(job)
    sync(proxy)
    assert proxy.job.callable.__name__ == "passthrough"
    if callable_ is jobs.add:
        assert proxy.result == result == 21
    else:  # an equal failure (each object pickles its own copy)
        assert proxy.result.check(ValueError) and result.check(ValueError)
        assert proxy.result.getErrorMessage() == result.getErrorMessage() == "boom"
    assert sum(jobs.calls.values()) == 0
    expected = "success: 21" if callable_ is jobs.add else "failure: ValueError: boom"
    assert after.result == expected


def test_a_callback_added_to_a_completed_job_runs_at_once(dispatcher, queue, connect):
    job = put(queue, Job(jobs.add, 3, 4))
    wait_for_result(job)
    callback = job.add_callback(Job(jobs.double))
    assert callback.status == status.COMPLETED
    assert callback.result == 14
    # It was committed in this thread's transaction.
    other = connect()
    stored = other.get(callback._p_oid)
    assert stored.status == status.COMPLETED and stored.result == 14
    assert job.status == status.COMPLETED


def test_a_callback_must_be_new(queue):
    job = Job(jobs.add, 1, 2)
    used = Job(jobs.echo)
    used(1)
    with pytest.raises(BadStatusError, match="a callback must be new"):
        job.add_callback(used)


# -- begin_after and begin_by --------------------------------------------------------

def test_a_future_job_is_not_claimed_until_due(queue, record, clock):
    dispatcher_record = record()
    agent = dispatcher_record["main"]
    job = queue.put(Job(jobs.add, 1, 2), begin_after=clock.now + timedelta(minutes=5))
    commit(queue)
    assert job.begin_after == clock.now + timedelta(minutes=5)
    assert not queue.has_due_jobs()
    assert agent.claim_job() is None
    clock.advance(minutes=4, seconds=59)
    queue.dispatchers.ping(dispatcher_record.UUID)  # a dispatcher pings every poll
    assert agent.claim_job() is None
    clock.advance(seconds=1)
    assert queue.has_due_jobs()
    assert agent.claim_job() is job
    assert job.status == status.ASSIGNED


def test_a_worker_starts_a_future_job_when_it_is_due(dispatcher, queue):
    begin_after = datetime.now(timezone.utc) + timedelta(seconds=1)
    job = put(queue, Job(jobs.add, 1, 2), begin_after=begin_after)
    wait_for_poll(dispatcher, 2)
    sync(job)
    assert job.status == status.PENDING
    assert wait_for_result(job, seconds=10) == 3
    assert job.active_start >= begin_after


def test_a_naive_begin_after_is_refused_clearly(queue):
    with pytest.raises(ValueError, match="begin_after must be timezone-aware"):
        queue.put(Job(jobs.add, 1, 2), begin_after=datetime.now())
    assert len(queue) == 0


def test_now_in_microseconds_is_the_current_time_of_the_time_source(clock):
    assert now_microseconds() == to_microseconds(clock.now)
    clock.advance(seconds=1.5)
    assert now_microseconds() == to_microseconds(clock.now)
    clock.uninstall()  # the system clock again
    before = to_microseconds(utcnow())
    assert before <= now_microseconds() <= to_microseconds(utcnow())


def test_begin_after_is_stored_in_utc(queue):
    plus_two = timezone(timedelta(hours=2))
    start = datetime(2030, 1, 1, 12, 0, tzinfo=plus_two)
    job = queue.put(Job(jobs.add, 1, 2), begin_after=start)
    assert job.begin_after == start
    assert job.begin_after.tzinfo == timezone.utc
    assert job.begin_after.hour == 10


def test_begin_after_is_stored_as_integer_microseconds(queue):
    start = datetime(2030, 1, 1, 12, 0, 0, 123456, tzinfo=timezone.utc)
    job = queue.put(Job(jobs.add, 1, 2), begin_after=start)
    assert job.__getstate__()["_begin_after"] == to_microseconds(start)
    assert job.begin_after == start and job.due_microseconds() == to_microseconds(start)


def test_a_begin_after_stored_as_a_datetime_by_an_earlier_version_still_reads(queue):
    start = datetime(2030, 1, 1, 12, 0, tzinfo=timezone.utc)
    job = queue.put(Job(jobs.add, 1, 2), begin_after=start)
    job._begin_after = start  # as stored before
    assert job.begin_after == start
    assert job.due_microseconds() == to_microseconds(start)
    job.begin_by = timedelta(minutes=5)
    assert job.deadline == start + timedelta(minutes=5)


def test_an_expired_job_fails_with_timeout_instead_of_running(dispatcher, queue):
    job = Job(jobs.counted, "ran")
    callback = job.add_callback(Job(jobs.describe))
    long_ago = datetime.now(timezone.utc) - timedelta(hours=1)
    put(queue, job, begin_after=long_ago, begin_by=timedelta(minutes=1))
    result = wait_for_result(job)
    assert result.check(TimeoutError)
    assert jobs.calls["ran"] == 0
    assert job.attempts == 0
    assert callback.status == status.COMPLETED
    assert callback.result.startswith("failure: TimeoutError: not started before")


def test_a_job_in_time_runs_despite_begin_by(dispatcher, queue):
    job = put(queue, Job(jobs.add, 1, 1), begin_by=timedelta(minutes=5))
    assert job.deadline == job.begin_after + timedelta(minutes=5)
    assert wait_for_result(job) == 2


def test_a_deadline_past_the_last_datetime_never_passes(dispatcher, queue):
    # begin_after + begin_by overflowed at every claim: skipped for ever.
    job = put(queue, Job(jobs.add, 1, 1), begin_by=timedelta.max)
    assert job.deadline is None and not job.deadline_passed()
    assert wait_for_result(job) == 2


def test_begin_by_must_be_a_non_negative_timedelta(queue):
    with pytest.raises(ValueError, match="begin_by must not be negative"):
        queue.put(Job(jobs.add, 1, 2), begin_by=timedelta(seconds=-1))
    with pytest.raises(TypeError, match="begin_by must be a timedelta"):
        queue.put(Job(jobs.add, 1, 2), begin_by=60)
    assert len(queue) == 0


def test_fail_takes_a_pending_job_out_of_its_queue(queue):
    job = put(queue, Job(jobs.add, 1, 2))
    callback = job.add_callback(Job(jobs.describe))
    commit(queue)
    job.fail(KeyError("cancelled"))
    assert len(queue) == 0
    assert job.status == status.COMPLETED
    assert job.result.check(KeyError)
    assert callback.result == "failure: KeyError: 'cancelled'"


def test_fail_commits_the_callers_transaction_instead_of_dropping_it(queue, conn, connect):
    conn.root()["note"] = "made before fail()"
    job = queue.put(Job(jobs.add, 1, 2))  # not committed yet
    job.fail()
    assert job.status == status.COMPLETED and job.result.check(TimeoutError)
    assert len(queue) == 0
    other = connect()
    assert other.root()["note"] == "made before fail()"
    assert other.get(job._p_oid).status == status.COMPLETED


def test_add_callbacks_on_a_completed_job_runs_the_chosen_side_at_once(queue, connect):
    job = put(queue, Job(jobs.boom))
    job.fail(KeyError("gone"))
    proxy = job.add_callbacks(Job(jobs.counted, "success"), Job(jobs.describe))
    assert proxy.job is proxy.failure
    assert proxy.result == "failure: KeyError: 'gone'"
    stored = connect().get(proxy.job._p_oid)
    assert stored.status == status.COMPLETED and stored.result == proxy.result


# -- hooks and special callables ------------------------------------------------------

def test_set_up_and_tear_down_wrap_each_attempt_tear_down_after_commit(dispatcher, queue):
    job = put(queue, jobs.HookedJob(jobs.add, 1, 2))
    assert wait_for_result(job) == 3
    wait_until(lambda: len(jobs.log) == 2)
    assert jobs.log == [
        ("set_up", job._p_oid),
        # tear_down saw the committed result
        ("tear_down", "setup info", status.COMPLETED, False),
    ]


def test_tear_down_also_runs_after_a_failure(dispatcher, queue):
    job = put(queue, jobs.HookedJob(jobs.boom))
    assert wait_for_result(job).check(ValueError)
    wait_until(lambda: len(jobs.log) == 2)
    assert jobs.log == [
        ("set_up", job._p_oid),
        # after the abort, before the failure was stored
        ("tear_down", "setup info", status.ACTIVE, False),
    ]


def test_a_broken_tear_down_does_not_lose_the_result(dispatcher, queue):
    job = put(queue, jobs.BrokenTearDownJob(jobs.add, 2, 2))
    assert wait_for_result(job) == 4
    # tear_down runs after the outcome's commit: the result may show first.
    wait_until(lambda: jobs.log == [("tear_down", None)], describe=lambda: f"for {jobs.log}")


def test_a_method_of_a_persistent_object_is_a_job(dispatcher, queue, conn):
    counter = conn.root()["counter"] = jobs.Counter()
    commit(queue)
    job = put(queue, Job(counter.increment, 5))
    assert ").increment(5)" in repr(job)
    assert wait_for_result(job) == 5
    sync(counter)
    assert counter.value == 5
    assert job.callable.__self__ is counter


def test_a_job_returning_a_job_completes_with_the_inner_result(dispatcher, queue):
    job = put(queue, Job(jobs.returns_job, 41))
    assert wait_for_result(job) == 42
    agent = queue.dispatchers[dispatcher.uuid]["main"]
    wait_until(lambda: len(agent.completed) == 2, sync=lambda: sync(job))
    inner = [j for j in agent.completed if j.callable is jobs.add]
    assert len(inner) == 1
    assert list(inner[0].args) == [41, 1] and inner[0].result == 42
    assert inner[0].status == status.COMPLETED


def test_a_job_returning_a_deferred_completes_when_it_fires(dispatcher, queue):
    job = put(queue, Job(jobs.returns_deferred, "fire", "late"))
    wait_for_start(job)
    # The worker is done with the call, but the job waits for the Deferred.
    wait_until(lambda: not dispatcher.active_job_ids())
    wait_for_poll(dispatcher)
    sync(job)
    assert job.status == status.ACTIVE and job.result is None
    jobs.event("fire").set()
    assert wait_for_result(job) == "late"
    agent = queue.dispatchers[dispatcher.uuid]["main"]
    wait_until(lambda: job in agent.completed, sync=lambda: sync(job))
    assert len(agent) == 0


def test_a_deferred_firing_before_the_job_is_recorded_waiting_completes_it(
        queue, record, conn):
    # Its start shares the commit that records it waiting, as a job started
    # with its predecessor's grouped outcome does; fired before that commit
    # landed, the Deferred found the job not started, and its result was
    # dropped: the job then waited for ever.
    agent = record()["main"]
    job = put(queue, Job(jobs.returns_deferred_fired_while_committing, "early"))
    assert agent.claim_job() is job
    job.mark_active()  # not committed
    assert job.run_claimed() is None
    sync(job)
    assert job.status == status.COMPLETED and job.result == "early"
    assert job.attempts == 1


def test_callbacks_run_once_when_the_job_completes_elsewhere_before_its_attempt_ends(
        dispatcher, queue):
    # The worker read the job's status after its commit: completed
    # meanwhile by the Deferred it waited for (or the job it returned), its
    # callbacks ran elsewhere, and the worker ran them again.
    job = jobs.SlowTearDownJob(jobs.returns_deferred, "fire", "late")
    callback = job.add_callback(Job(jobs.callback_holding))
    put(queue, job)
    wait_until(lambda: job.waiting, sync=lambda: sync(job))
    jobs.event("fire").set()
    assert jobs.event("callback running").wait(jobs.WAIT)
    jobs.event("release").set()
    assert wait_for_result(callback) == "late"
    wait_until(lambda: job.status == status.COMPLETED, sync=lambda: sync(job))
    wait_for_poll(dispatcher)
    assert jobs.calls["callback"] == 1 and callback.attempts == 1


def test_a_deferred_firing_a_failure_stores_the_failure(dispatcher, queue):
    job = Job(jobs.returns_failing_deferred, "fire")
    callback = job.add_callback(Job(jobs.describe))
    put(queue, job)
    wait_for_start(job)
    jobs.event("fire").set()
    assert wait_for_result(job).check(KeyError)
    assert callback.result == "failure: KeyError: 'fired as failure'"


class MethodJob(Job):
    """A job whose callable is a method of its own."""

    def __init__(self, value, method="keep"):
        super().__init__(getattr(self, method), value)

    def keep(self, value):
        return value

    def drop(self, value):
        return None


def test_jobs_calling_the_same_code_do_the_same_work():
    assert Job(jobs.echo, 1).same_work(Job(jobs.echo, 2))
    assert not Job(jobs.echo, 1).same_work(Job(jobs.double, 1))
    # A method of the job itself: the same method of the same class.
    assert MethodJob(1).same_work(MethodJob(2))
    assert not MethodJob(1).same_work(MethodJob(1, method="drop"))
    assert not MethodJob(1).same_work(Job(jobs.echo, 1))


def test_the_deferred_of_a_superseded_attempt_leaves_the_job_alone(queue, record, conn,
                                                                  caplog):
    # Its worker was found dead (paused) and a sibling started the job
    # again; the first attempt's Deferred then fired: it completed the job
    # under the running attempt, whose outcome was refused.
    agent = record()["main"]
    job = put(queue, Job(jobs.returns_deferred, "first", "stale"))
    assert agent.claim_job() is job
    assert job() is None and job.waiting  # waits for its Deferred
    conn.transaction_manager.commit()
    job.interrupted()  # found dead: queued again, first in line
    assert job.status == status.PENDING and not job.waiting
    assert agent.claim_job() is job
    job.mark_active()  # the sibling's attempt, running
    assert job.attempts == 2 and not job.waiting  # not for the first attempt's Deferred
    conn.transaction_manager.commit()
    jobs.event("first").set()
    jobs.threads[-1].join(jobs.WAIT)
    sync(job)
    assert job.status == status.ACTIVE and job.result is None
    assert "its result is dropped" in caplog.text


def test_interruptions_count_workers_dying_while_callbacks_run(queue, record, conn):
    agent = record()["main"]
    job = Job(jobs.echo, 1)
    callback = job.add_callback(Job(jobs.echo))
    put(queue, job)
    assert agent.claim_job() is job
    job._store_outcome(1, {})  # its callbacks are due, the first one runs...
    callback.mark_active()
    job.interrupted()  # ...when its worker dies
    assert job.interruptions == 1
    callback._callback_interrupted(1)
    assert callback.interruptions == 1 and callback.result == 1


@pytest.mark.parametrize("callable", [jobs.returns_unloadable, jobs.returns_unpicklable])
def test_a_result_that_would_not_load_back_is_stored_as_a_failure(dispatcher, queue, connect,
                                                                 callable):
    # Stored as it was, it made the job's record unloadable: every console
    # page, REST answer and monitor command listing the job failed, and
    # neither removing nor purging it worked.
    job = put(queue, Job(callable))
    result = wait_for_result(job)
    assert result.check(UnpicklableError)
    assert "cannot be stored and loaded back" in result.getErrorMessage()
    assert connect().get(job._p_oid).result.check(UnpicklableError)
