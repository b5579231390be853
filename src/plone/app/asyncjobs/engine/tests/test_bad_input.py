"""Mistakes are refused where they are made, with messages that say what to do."""
import math
import os
import types
import uuid
from datetime import datetime
from datetime import timedelta
from datetime import timezone

import pytest

from plone.app.asyncjobs.engine import configure
from plone.app.asyncjobs.engine import exclusions
from plone.app.asyncjobs.engine import status
from plone.app.asyncjobs.engine.dispatcher import Dispatcher
from plone.app.asyncjobs.engine.exceptions import BadStatusError
from plone.app.asyncjobs.engine.exceptions import DispatcherError
from plone.app.asyncjobs.engine.exclusions import ClaimExclusions
from plone.app.asyncjobs.engine.ids import object_id
from plone.app.asyncjobs.engine.composite import parallel
from plone.app.asyncjobs.engine.composite import serial
from plone.app.asyncjobs.engine.job import Job
from plone.app.asyncjobs.engine.queue import Queue
from plone.app.asyncjobs.engine.testing.clock import Clock
from plone.app.asyncjobs.engine.testing.reactor import FakeReactor
from plone.app.asyncjobs.engine.testing.waiting import wait_for_poll
from plone.app.asyncjobs.engine.testing.waiting import wait_for_result
from plone.app.asyncjobs.engine.testing.waiting import wait_for_start
from plone.app.asyncjobs.engine.testing.waiting import wait_until
from plone.app.asyncjobs.engine.tests import jobs
from plone.app.asyncjobs.engine.tests.support import commit
from plone.app.asyncjobs.engine.tests.support import sync


def test_a_function_that_cannot_be_found_by_its_name_is_refused():
    impostor = types.FunctionType(jobs.add.__code__, jobs.add.__globals__, "impostor")
    with pytest.raises(ValueError, match="jobs.add cannot be imported by name"):
        Job(impostor)


def test_bind_refuses_what_job_refuses():
    with pytest.raises(ValueError, match="<lambda> cannot be a job"):
        Job.bind(lambda job: job)


def test_a_callback_must_be_callable():
    with pytest.raises(TypeError, match="a job needs a callable, not 'text'"):
        Job(jobs.echo, 1).add_callback("text")


def test_the_callable_can_change_only_while_new(queue):
    job = Job(jobs.echo, 1)
    job.callable = jobs.double
    assert job.callable is jobs.double
    with pytest.raises(ValueError, match="<lambda> cannot be a job"):
        job.callable = lambda: 1
    queue.put(job)
    with pytest.raises(BadStatusError, match="cannot change the callable of a pending job"):
        job.callable = jobs.echo


@pytest.mark.parametrize("value, error, message", [
    ("tomorrow", TypeError, "begin_after must be a datetime, not str"),
    (datetime(2030, 1, 1), ValueError, "begin_after must be timezone-aware .* naive"),
])
def test_begin_after_must_be_an_aware_datetime(queue, value, error, message):
    with pytest.raises(error, match=message):
        queue.put(Job(jobs.echo, 1), begin_after=value)
    with pytest.raises(error, match=message):
        Job(jobs.echo, 1).begin_after = value
    assert len(queue) == 0


def test_scheduling_cannot_change_once_a_job_runs(queue, record):
    agent = record()["main"]
    job = queue.put(Job(jobs.echo, 1))
    later = datetime.now(timezone.utc) + timedelta(hours=1)
    with pytest.raises(BadStatusError, match="cannot change begin_after of a pending job"):
        job.begin_after = later
    job.begin_by = timedelta(hours=1)  # still allowed while pending
    assert agent.claim_job() is job
    job.mark_active()
    with pytest.raises(BadStatusError, match="cannot change begin_by of a active job"):
        job.begin_by = timedelta(hours=2)
    with pytest.raises(BadStatusError, match="cannot change quota_names of a active job"):
        job.quota_names = ()


def test_quota_names_must_be_a_sequence_of_known_names(queue):
    with pytest.raises(TypeError, match="not the string 'mail'"):
        queue.put(Job(jobs.echo, 1), quota_names="mail")
    with pytest.raises(ValueError, match="unknown quota name 'mail'"):
        queue.put(Job(jobs.echo, 1), quota_names=["mail"])
    assert len(queue) == 0


def test_operations_that_the_status_forbids(queue):
    job = queue.put(Job(jobs.echo, 1))
    with pytest.raises(BadStatusError, match="only a new or assigned job can be called"):
        job()
    with pytest.raises(BadStatusError, match="no callbacks to resume"):
        job.resume_callbacks()
    job.fail()
    assert job.status == status.COMPLETED
    with pytest.raises(BadStatusError, match="cannot fail a completed job"):
        job.fail()
    with pytest.raises(BadStatusError, match="only a new or assigned job can be called"):
        job()


def test_an_unknown_queue_name(queue):
    with pytest.raises(KeyError):
        configure.get_queue(queue._p_jar, "nope")


def test_the_testing_clock_refuses_naive_times():
    with pytest.raises(ValueError, match="now must be timezone-aware"):
        Clock(datetime(2030, 1, 1))


def test_a_broken_set_up_fails_the_job_without_calling_it(dispatcher, queue):
    job = queue.put(jobs.BrokenSetUpJob(jobs.counted, "called"))
    commit(queue)
    result = wait_for_result(job)
    assert result.check(RuntimeError)
    assert result.getErrorMessage() == "set_up is broken"
    assert jobs.calls["called"] == 0
    assert jobs.log == [("tear_down", None)]


def test_a_job_calling_itself_fails_instead_of_looping(dispatcher, queue):
    job = queue.put(Job.bind(jobs.call_it))
    commit(queue)
    result = wait_for_result(job)
    assert result.check(BadStatusError)
    assert "only a new or assigned job can be called" in result.getErrorMessage()


def test_a_worker_survives_a_bad_job_and_runs_the_next(dispatcher, queue):
    bad = queue.put(Job(jobs.make_lock))
    commit(queue)
    wait_for_result(bad)
    good = queue.put(Job(jobs.add, 1, 1))
    commit(queue)
    assert wait_for_result(good) == 2


def test_put_of_a_job_held_by_an_agent_is_refused(queue, record):
    agent = record()["main"]
    job = queue.put(Job(jobs.echo, 1))
    agent.claim_job()
    assert job.status == status.ASSIGNED
    with pytest.raises(ValueError, match="only a new job can be queued; .* is assigned"):
        queue.put(job)


def test_put_of_a_running_job_is_refused(dispatcher, queue):
    job = queue.put(Job(jobs.wait_for_event, "running"))
    commit(queue)
    wait_for_start(job)
    with pytest.raises(ValueError, match="is active"):
        queue.put(job)
    jobs.event("running").set()
    wait_for_result(job)


def test_a_job_whose_claim_cannot_be_committed_stays_pending_and_blocks_nothing(
    dispatcher, queue, caplog, monkeypatch
):
    monkeypatch.setattr(exclusions, "FIRST_PAUSE", timedelta(seconds=0.5))
    sync(queue)
    record = queue.dispatchers[dispatcher.uuid]
    record.pause()  # so that no push claims the job before it cannot be stored back
    poison = queue.put(Job(jobs.Unstorable()))
    commit(queue)
    jobs.Unstorable.refuse = True  # the claim cannot store the job back
    record.resume()
    commit(queue)
    dispatcher.wake()
    wait_until(lambda: object_id(poison) in dispatcher.unclaimable)
    good = queue.put(Job(jobs.add, 1, 1))
    commit(queue)
    assert wait_for_result(good) == 2
    wait_for_poll(dispatcher, 2)
    sync(queue)
    assert poison.status == status.PENDING and poison.result is None
    assert jobs.calls["poison"] == 0
    assert "cannot claim job" in caplog.text
    # Tried again after a pause: once it can be stored, it runs.
    jobs.Unstorable.refuse = False
    assert wait_for_result(poison) is None and jobs.calls["poison"] == 1


def test_a_job_that_is_part_of_another_cannot_be_queued_too(queue):
    # Queued as well, a callback ran twice, the second time while the first
    # run was alive.
    job = Job(jobs.echo, 1)
    callback = job.add_callback(Job(jobs.describe))
    inner = Job(jobs.add, 1, 2)
    outer = Job(inner)
    for part, owner in ((callback, job), (inner, outer)):
        with pytest.raises(ValueError, match="is part of .* queue that job instead"):
            queue.put(part)
        with pytest.raises(ValueError, match="is part of"):
            queue.put_many([Job(jobs.echo, 2), part])
    assert len(queue) == 0
    queue.put(job)
    assert len(queue) == 1


def test_put_many_refuses_a_job_given_twice(queue):
    # Both copies were inserted: the queue's length stayed one too high.
    job = Job(jobs.echo, 1)
    with pytest.raises(ValueError, match="the same job twice"):
        queue.put_many([job, Job(jobs.echo, 2), job])
    assert len(queue) == 0 and job.status == status.NEW


def test_a_callback_must_not_belong_to_another_job_or_make_a_cycle():
    # Accepted, a job that was its own callback stayed in 'callbacks' for
    # ever; a callback of two jobs ran for one of them only.
    first, second = Job(jobs.echo, 1), Job(jobs.echo, 2)
    with pytest.raises(ValueError, match="it is that job"):
        first.add_callback(first)
    callback = first.add_callback(Job(jobs.describe))
    with pytest.raises(ValueError, match="is part of .* already"):
        second.add_callback(callback)
    with pytest.raises(ValueError, match="it is that job, or a job it is part of"):
        callback.add_callback(first)
    assert first.callbacks == (callback,) and not second.callbacks


def test_a_composite_takes_only_new_jobs_of_its_own(queue):
    # A queued inner job never got the callback that moves the composite
    # on: the composite waited for ever.
    queued = queue.put(Job(jobs.echo, 1))
    with pytest.raises(ValueError, match="cannot be part of a composite job"):
        serial(Job(jobs.echo, 2), queued)
    with pytest.raises(ValueError, match="cannot be part of a composite job"):
        parallel(Job(jobs.echo, 2), postprocess=queued)
    owned = Job(jobs.echo, 3)
    Job(jobs.echo, 4).add_callback(owned)
    with pytest.raises(ValueError, match="cannot be part of a composite job"):
        parallel(owned)


@pytest.mark.parametrize("level", ["loud", 10.0, True])
def test_a_failure_log_level_must_be_a_logging_level(queue, level):
    # Accepted, it failed the worker's logging of the job's failure.
    with pytest.raises(TypeError, match="failure_log_level must be a logging level"):
        queue.put(Job(jobs.echo, 1), failure_log_level=level)
    job = Job(jobs.echo, 1)
    job.failure_log_level = level
    with pytest.raises(TypeError, match="failure_log_level must be a logging level"):
        queue.put(job)
    with pytest.raises(TypeError, match="failure_log_level must be a logging level"):
        Job(jobs.echo, 1).add_callback(Job(jobs.describe), failure_log_level=level)
    assert len(queue) == 0


@pytest.mark.parametrize("name, value, error", [
    ("priority", "high", TypeError), ("priority", None, TypeError),
    ("unique_key", 42, TypeError), ("unique_while", ("running",), ValueError),
])
def test_claim_options_set_on_the_job_are_checked_when_it_is_queued(queue, name, value, error):
    # A priority of "high" made every later claim and listing of the
    # queue fail; a bad unique_while every later put of the key.
    job = Job(jobs.echo, 1)
    setattr(job, name, value)
    with pytest.raises(error, match=name):
        queue.put(job)
    assert len(queue) == 0
    job = Job(jobs.echo, 1)
    job.unique_while = ["active", "pending"]  # any iterable of the statuses
    assert queue.put(job, unique_key="k").unique_while == ("pending", "active")


def test_queue_and_quota_names_and_sizes(conn):
    # "work" made the queues 'w', 'o', 'r' and 'k'.
    with pytest.raises(TypeError, match="not the string 'work'"):
        configure.ensure_queues(conn, "work")
    queues = configure.ensure_queues(conn)
    with pytest.raises(TypeError, match="a queue name must be a string"):
        queues[None] = Queue()
    with pytest.raises(ValueError, match="a quota size must be a positive integer"):
        queues[""].quotas.create("one", size=True)
    assert list(queues) == [""]


def test_a_retry_decision_of_the_wrong_kind_fails_the_job(dispatcher, queue, caplog):
    # A policy deciding 30 (seconds) reran the job at once, without end.
    job = queue.put(Job(jobs.boom, "no"), retry_policy_factory=jobs.SecondsPolicy)
    commit(queue)
    assert wait_for_result(job).getErrorMessage() == "no"
    assert job.attempts == 1
    assert "decided 30, which is neither a bool" in caplog.text


def test_values_out_of_range_get_errors_that_name_them(queue):
    # They raised OverflowError or compared a name with a number.
    late = datetime.max.replace(tzinfo=timezone(-timedelta(hours=5)))
    with pytest.raises(ValueError, match="begin_after .* is out of range in UTC"):
        queue.put(Job(jobs.echo, 1), begin_after=late)
    with pytest.raises(TypeError, match="quota names must be non-empty strings, not 1"):
        queue.put(Job(jobs.echo, 1), quota_names=["a", 1])
    assert len(queue) == 0


@pytest.mark.parametrize("options, message", [
    (dict(ping_interval=30, ping_death_interval=30), "at least twice ping_interval"),
    (dict(ping_death_interval=45), r"ping_death_interval \(45.0 s\) must be at least twice"),
    (dict(ping_interval=0), "ping_interval must be a positive"),
    (dict(poll_interval=math.nan), "poll_interval must be a positive finite"),
    (dict(poll_interval=1e10), "poll_interval must be at most 86400 seconds"),
    (dict(shutdown_grace=math.inf), "shutdown_grace must be a finite"),
    (dict(shutdown_grace="10"), "shutdown_grace must be a number"),
    (dict(polls_size=0), "polls_size must be a positive integer"),
    (dict(jobs_size=2.5), "jobs_size must be a positive integer"),
])
def test_dispatcher_settings_that_would_fail_later_are_refused(db, options, message):
    # A death interval of one ping interval found a live dispatcher dead
    # between its pings, and its running job ran twice at once; NaN,
    # infinite and huge intervals failed in timers, polls or stop().
    with pytest.raises((TypeError, ValueError), match=message):
        Dispatcher(db, FakeReactor(), **options)


@pytest.mark.parametrize("size", [0, -1, "2", None, 2.5, True])
def test_a_quota_size_set_later_is_checked(queue, size):
    # Set as plone.app.async did, a bad size left its jobs pending for ever.
    quota = queue.quotas.create("pdf", size=1)
    with pytest.raises(ValueError, match="a quota size must be a positive integer"):
        quota.size = size
    quota.size = 2
    assert quota.size == 2


def test_a_callback_of_a_chooser_is_checked_when_added(queue):
    # Checked only once chosen, a bad one left the job in 'callbacks' for
    # ever.
    job = Job(jobs.echo, 1)
    chooser = job.addCallbacks(success=Job(jobs.double))
    with pytest.raises(TypeError, match="failure_log_level must be a logging level"):
        chooser.addCallback(Job(jobs.double), failure_log_level="LOUD")
    with pytest.raises(ValueError, match="it is that job, or a job it is part of"):
        chooser.addCallback(job)
    with pytest.raises(ValueError, match="it is that job, or a job it is part of"):
        chooser.addCallback(chooser.success)
    owned = Job(jobs.echo, 2).add_callback(Job(jobs.double))
    with pytest.raises(ValueError, match="is part of .* already"):
        chooser.addCallback(owned)
    with pytest.raises(BadStatusError, match="a callback must be new"):
        chooser.addCallback(queue.put(Job(jobs.echo, 3)))
    assert chooser.callbacks == []


def test_a_quota_made_again_counts_the_jobs_that_run_under_its_name(queue, record):
    # Made again, it forgot them: a quota of size one ran two jobs at once.
    agent = record()["main"]
    queue.quotas.create("pdf", size=1)
    running = queue.put(Job(jobs.echo, 1), quota_names=("pdf",))
    assert agent.claim_job() is running
    queue.quotas.remove("pdf")
    quota = queue.quotas.create("pdf", size=1)
    waiting = queue.put(Job(jobs.echo, 2), quota_names=("pdf",))
    assert list(quota) == [running] and quota.filled
    assert agent.claim_job() is None and waiting.status == status.PENDING


def test_a_refused_start_leaves_no_file_open(db, queues, start_dispatcher):
    # Each refused start left its reactor's wake-up pipe open.
    start_dispatcher()
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(5):
        with pytest.raises(DispatcherError, match="another dispatcher with UUID"):
            configure.start(db)
    with pytest.raises(ValueError, match="ping_death_interval"):
        configure.start(db, uuid=uuid.uuid4(), ping_interval=30, ping_death_interval=30)
    assert len(os.listdir("/proc/self/fd")) == before


def test_a_job_whose_claim_failed_is_tried_again_later(clock):
    # The error may have been passing, and the process the only worker:
    # skipped for good, the job was stranded until a restart.
    skipped = ClaimExclusions()
    key = (42, "main")
    assert not skipped and key not in skipped
    assert skipped.add(key) == timedelta(minutes=1)
    assert key in skipped and (43, "main") not in skipped
    clock.advance(seconds=59)
    assert key in skipped
    clock.advance(seconds=1)
    assert key not in skipped
    # Each further failure doubles the pause, up to an hour.
    assert [skipped.add(key) for _ in range(7)][-3:] == [timedelta(minutes=32),
                                                         timedelta(hours=1),
                                                         timedelta(hours=1)]
    # Claimed after all: forgotten, a later failure pauses it a minute.
    skipped.claimed({key})
    assert not skipped and skipped.add(key) == timedelta(minutes=1)
    clock.advance(minutes=1)
    assert not skipped  # its pause passed
