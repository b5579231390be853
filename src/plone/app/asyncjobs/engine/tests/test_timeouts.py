"""Running-time limits: asked to stop at the limit, abandoned after the grace."""
import functools
import math

import pytest

from plone.app.asyncjobs.engine import configure
from plone.app.asyncjobs.engine import status
from plone.app.asyncjobs.engine.exceptions import JobTimeoutError
from plone.app.asyncjobs.engine.exceptions import OutcomeUnknownError
from plone.app.asyncjobs.engine.failure import is_failure
from plone.app.asyncjobs.engine.ids import object_id
from plone.app.asyncjobs.engine.job import Job
from plone.app.asyncjobs.engine.metrics import STATISTICS
from plone.app.asyncjobs.engine.retry import DelayedRetry
from plone.app.asyncjobs.engine.testing.waiting import wait_for_result
from plone.app.asyncjobs.engine.testing.waiting import wait_for_start
from plone.app.asyncjobs.engine.testing.waiting import wait_until
from plone.app.asyncjobs.engine.tests import jobs
from plone.app.asyncjobs.engine.tests.support import commit
from plone.app.asyncjobs.engine.tests.support import sync
from plone.app.asyncjobs.engine.timeouts import time_limit
from plone.app.asyncjobs.engine.workers import TAKEN_OVER


def assert_timed_out(result, limit):
    assert is_failure(result) and result.check(JobTimeoutError), result
    assert result.getErrorMessage() == f"timed out after {limit:g} s"


def open_connections(db):
    return sum(1 for info in db.connectionDebugInfo() if info["opened"])


@pytest.mark.parametrize("how", ["check", "poll"])
def test_a_job_that_honours_the_request_ends_at_once_with_a_timeout(dispatcher, queue, how):
    # Its grace is longer than the test waits: only honouring ends it.
    queue.timeout_grace = 3600
    job = queue.put(Job(jobs.run_until_cancelled, how, how), timeout=0.2)
    callback = job.add_callback(Job(jobs.describe))
    commit(queue)
    assert_timed_out(wait_for_result(job), 0.2)
    assert "JobTimeoutError" in wait_for_result(callback)
    # The default policy, like NeverRetry, does not run it again.
    assert jobs.calls[how] == 1 and job.attempts == 1
    info = wait_until(lambda: dispatcher.job_info(*object_id(job))["completed"] is not None
                      and dispatcher.job_info(*object_id(job)))
    assert info["failed"] is True and info["cancelled"] is False
    assert info["timed out"] is True and info["timeout"] == 0.2


def test_the_retry_policy_decides_on_a_timeout(dispatcher, queue):
    policy = functools.partial(DelayedRetry, max_attempts=2, base_delay=0.05)
    job = queue.put(Job(jobs.run_until_cancelled, "again", "check"), timeout=0.2,
                    retry_policy_factory=policy)
    commit(queue)
    assert_timed_out(wait_for_result(job), 0.2)
    assert jobs.calls["again"] == 2 and job.attempts == 2


def test_a_job_that_ignores_the_request_is_abandoned_after_its_grace(
        start_dispatcher, queue, conn):
    dispatcher = start_dispatcher(agent_size=1)
    queue.timeout_grace = 0.2
    slow = queue.put(jobs.HookedJob(jobs.overrun_and_write, "slow"), timeout=0.2)
    commit(queue)
    assert jobs.event("slow running").wait(jobs.WAIT)
    pool = dispatcher._pools["", "main"]
    abandoned = pool.alive()[0]
    assert_timed_out(wait_for_result(slow), 0.2)
    # Its slot is free and a new thread took its place: another job runs on
    # this size-1 agent while the abandoned thread still runs the slow one.
    quick = queue.put(Job(jobs.echo, "quick"))
    commit(queue)
    assert wait_for_result(quick) == "quick"
    assert abandoned.is_alive() and not jobs.event("slow done").is_set()
    assert len(pool.alive()) == 1 and abandoned not in pool.alive()
    assert slow.agent is None or not slow.agent.holds(slow)
    # When the slow job goes on, nothing it writes is committed.
    jobs.event("slow release").set()
    assert jobs.event("slow done").wait(jobs.WAIT)
    abandoned.join(jobs.WAIT)
    assert not abandoned.is_alive()
    # Its set-up was torn down all the same.
    assert [entry[0] for entry in jobs.log] == ["set_up", "tear_down"]
    sync(slow)
    assert "slow" not in conn.root()
    assert_timed_out(slow.result, 0.2)
    assert jobs.calls["slow"] == 1
    assert dispatcher.statistics.snapshot()["jobs abandoned at their time limit"] == 1
    assert dispatcher.job_info(*object_id(slow))["timed out"] is True


# After a job called in its code, the job's code is still its own.
@pytest.mark.parametrize("func", [jobs.spin, jobs.spin_after_a_job])
def test_an_abandoned_job_that_never_returns_is_interrupted_until_its_thread_ends(
        start_dispatcher, queue, conn, func):
    dispatcher = start_dispatcher(agent_size=1)
    queue.timeout_grace = 0.2
    job = queue.put(Job(func, "spin", 1), timeout=0.2)
    commit(queue)
    assert jobs.event("spin running").wait(jobs.WAIT)
    [abandoned] = dispatcher._pools["", "main"].alive()
    connections = open_connections(dispatcher.db)
    assert_timed_out(wait_for_result(job), 0.2)
    # It swallows the first interruption; the next one, a grace period
    # later, ends it: its thread closes its connection and ends.
    abandoned.join(jobs.WAIT)
    assert not abandoned.is_alive()
    assert jobs.calls["spin interrupted"] == 2 and jobs.calls["spin spun out"] == 0
    assert dispatcher.statistics.snapshot()["abandoned threads interrupted"] == 2
    assert open_connections(dispatcher.db) == connections  # its replacement's, not its own
    sync(job)
    assert "spin" not in conn.root()
    assert_timed_out(job.result, 0.2)
    # Its replacement runs the next job.
    quick = queue.put(Job(jobs.echo, "quick"))
    commit(queue)
    assert wait_for_result(quick) == "quick"


def spin_then_take_over(dispatcher, queue, key, **options):
    """Queue :func:`jobs.spin` (with ``options`` for ``put``); once it runs,
    complete it as a sibling that found this worker dead would (its outcome
    unknown) while its attempt still spins here; return the job, after
    checking that the thread that ran it ended, interrupted."""
    job = queue.put(Job(jobs.spin, key), retry_policy_factory="never", **options)
    commit(queue)
    assert jobs.event(f"{key} running").wait(jobs.WAIT)
    [thread] = dispatcher._pools["", "main"].alive()
    sync(job)
    job.agent.give_up(job)
    commit(queue)
    assert wait_for_result(job).check(OutcomeUnknownError)
    thread.join(jobs.WAIT)
    assert not thread.is_alive()
    assert jobs.calls[f"{key} interrupted"] == 1 and jobs.calls[f"{key} spun out"] == 0
    return job


def test_a_job_completed_elsewhere_while_it_runs_here_is_still_stopped(
        start_dispatcher, queue, conn):
    dispatcher = start_dispatcher(agent_size=1)
    queue.timeout_grace = 0.2
    spin_then_take_over(dispatcher, queue, "taken", timeout=0.5)
    snapshot = dispatcher.statistics.snapshot()
    # At its time limit, or at the end of its grace once a poll saw it
    # taken over, whichever came first.
    assert (snapshot.get("jobs abandoned at their time limit", 0)
            + snapshot.get("jobs abandoned after a takeover", 0)) == 1
    assert snapshot["abandoned threads interrupted"] == 1


def test_a_job_without_a_limit_taken_over_elsewhere_is_stopped_after_its_grace(
        start_dispatcher, queue, conn):
    dispatcher = start_dispatcher(agent_size=1)
    queue.timeout_grace = 0.2
    # The next poll asks it to stop; a grace period later it is abandoned
    # and interrupted, and a new thread takes its place.
    job = spin_then_take_over(dispatcher, queue, "free")
    snapshot = dispatcher.statistics.snapshot()
    assert snapshot["jobs abandoned after a takeover"] == 1
    assert "jobs abandoned at their time limit" not in snapshot
    info = dispatcher.job_info(*object_id(job))
    assert info["result"] == "attempt abandoned: " + TAKEN_OVER
    quick = queue.put(Job(jobs.echo, "quick"))
    commit(queue)
    assert wait_for_result(quick) == "quick"


def test_a_thread_is_interrupted_only_once_abandoned_and_while_it_runs_a_job(
        start_dispatcher, queue):
    dispatcher = start_dispatcher(agent_size=1)
    job = queue.put(Job(jobs.run_until_cancelled, "busy", "ignore"))
    commit(queue)
    wait_for_start(job)
    [thread] = dispatcher._pools["", "main"].alive()
    assert thread.interrupt() is False  # running, not abandoned
    jobs.event("busy release").set()
    assert wait_for_result(job) == "finished"
    thread.fence.abandoned = "a test"
    try:
        assert thread.interrupt() is False  # abandoned, but between jobs
    finally:
        thread.fence.abandoned = False
    assert thread.is_alive()


def test_a_queue_default_applies_to_jobs_without_a_timeout(queue):
    queue.default_timeout = 30
    assert time_limit(queue.put(Job(jobs.echo, 1))) == 30
    assert time_limit(queue.put(Job(jobs.echo, 2), timeout=2.5)) == 2.5
    queue.default_timeout = None
    assert time_limit(queue.put(Job(jobs.echo, 3))) is None


def test_a_retry_copy_keeps_the_timeout(queue):
    assert queue.put(Job(jobs.echo, 1), timeout=7).copy().timeout == 7


@pytest.mark.parametrize("value, error", [
    (0, ValueError), (-1, ValueError), (math.inf, ValueError), (math.nan, ValueError),
    (10**400, ValueError), ("10", TypeError), (True, TypeError), ([1], TypeError),
])
def test_bad_timeouts_are_refused_by_put(queue, value, error):
    with pytest.raises(error, match="timeout must be"):
        queue.put(Job(jobs.echo, 1), timeout=value)
    assert len(queue) == 0


@pytest.mark.parametrize("name, value, error", [
    ("default_timeout", 0, ValueError), ("default_timeout", "x", TypeError),
    ("timeout_grace", -1, ValueError), ("timeout_grace", math.nan, ValueError),
    ("timeout_grace", "10", TypeError),
])
def test_a_queue_refuses_bad_time_limit_settings(queue, name, value, error):
    # Accepted, they failed the timers of every worker later.
    with pytest.raises(error, match=f"{name} must be"):
        setattr(queue, name, value)
    queue.default_timeout, queue.timeout_grace = 30, 0
    assert (queue.default_timeout, queue.timeout_grace) == (30, 0)


def test_a_job_without_a_limit_is_never_asked_to_stop(dispatcher, queue):
    job = queue.put(Job(jobs.run_until_cancelled, "free", "ignore"))
    commit(queue)
    wait_for_start(job)
    assert job.timeout is None and job.status == status.ACTIVE
    jobs.event("free release").set()
    assert wait_for_result(job) == "finished"


def test_the_callbacks_run_after_the_outcome_are_not_limited(start_dispatcher, queue, conn):
    dispatcher = start_dispatcher(agent_size=1)
    queue.timeout_grace = 0.2
    job = queue.put(Job(jobs.echo, "callback"), timeout=0.2)
    callback = job.add_callback(Job(jobs.overrun_and_write))
    commit(queue)
    assert jobs.event("callback running").wait(jobs.WAIT)
    [thread] = dispatcher._pools["", "main"].alive()
    wait_until(lambda: thread.watch is not None and thread.watch.ended)
    jobs.event("callback release").set()
    assert wait_for_result(callback) == "finished"
    assert wait_for_result(job) == "callback"
    sync(job)
    assert conn.root()["callback"] == "written after the time limit"
    assert "jobs abandoned at their time limit" not in dispatcher.statistics.snapshot()


def test_the_metrics_count_the_jobs_timed_out(dispatcher, queue):
    job = queue.put(Job(jobs.run_until_cancelled, "counted", "check"), timeout=0.2)
    commit(queue)
    wait_for_result(job)
    counted = dispatcher.statistics.snapshot()
    exposed = {key: name for key, name, _ in STATISTICS}
    assert counted["jobs asked to stop at their time limit"] == 1
    assert exposed["jobs asked to stop at their time limit"] == "asyncjobs_jobs_timed_out"
    assert exposed["jobs abandoned at their time limit"] == "asyncjobs_jobs_abandoned"


def test_a_job_still_running_when_its_dispatcher_stops_is_interrupted(
        start_dispatcher, queue, conn):
    # It ran on in its thread: a dispatcher started again in this process
    # ran the job a second time beside it.
    dispatcher = start_dispatcher(agent_size=1, shutdown_grace=0.2)
    job = queue.put(Job(jobs.spin, "stopping"), retry_policy_factory="never")
    commit(queue)
    assert jobs.event("stopping running").wait(jobs.WAIT)
    [thread] = dispatcher._pools["", "main"].alive()
    assert configure.stop(dispatcher)
    thread.join(jobs.WAIT)
    assert not thread.is_alive()
    assert jobs.calls["stopping interrupted"] == 1 and jobs.calls["stopping spun out"] == 0
    assert dispatcher.statistics.snapshot()["abandoned threads interrupted"] == 1
    sync(job)
    assert "stopping" not in conn.root()
