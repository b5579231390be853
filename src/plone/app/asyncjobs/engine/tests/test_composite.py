"""Serial and parallel composite jobs."""
from datetime import datetime
from datetime import timedelta
from datetime import timezone

import pytest

from plone.app.asyncjobs.engine import admin
from plone.app.asyncjobs.engine import configure
from plone.app.asyncjobs.engine import parallel
from plone.app.asyncjobs.engine import serial
from plone.app.asyncjobs.engine import status
from plone.app.asyncjobs.engine.cancel import cancel_request
from plone.app.asyncjobs.engine.composite import collect
from plone.app.asyncjobs.engine.exceptions import BadStatusError
from plone.app.asyncjobs.engine.exceptions import CancelledError
from plone.app.asyncjobs.engine.job import Job
from plone.app.asyncjobs.engine.testing.waiting import wait_for_result
from plone.app.asyncjobs.engine.testing.waiting import wait_for_start
from plone.app.asyncjobs.engine.testing.waiting import wait_until
from plone.app.asyncjobs.engine.tests import jobs
from plone.app.asyncjobs.engine.tests.support import commit
from plone.app.asyncjobs.engine.tests.support import sync


def put(queue, job):
    job = queue.put(job)
    commit(queue)
    return job


def steps(names_and_values):
    return [Job(jobs.step, name, value) for name, value in names_and_values]


def test_serial_runs_one_after_the_other_and_returns_the_jobs(dispatcher, queue):
    inner = steps([("a", 1), ("b", 2), ("c", 3)])
    composite = put(queue, serial(*inner))
    assert composite.kwargs["postprocess"].callable is collect
    result = wait_for_result(composite)
    assert result == tuple(inner)
    assert [job.result for job in result] == [1, 2, 3]
    assert all(job.status == status.COMPLETED for job in inner)
    assert jobs.log == [
        ("start", "a"), ("end", "a"), ("start", "b"), ("end", "b"),
        ("start", "c"), ("end", "c"),
    ]
    for before, after in zip(inner, inner[1:]):
        assert after.active_start >= before.active_end


def test_serial_with_postprocess_gives_it_the_jobs(dispatcher, queue):
    composite = put(queue, serial(
        *steps([("a", 1), ("b", 2)]),
        postprocess=Job(jobs.summarize_with_label, "sum"),
    ))
    assert wait_for_result(composite) == ["sum", 1, 2]


def test_parallel_runs_at_once_and_returns_the_jobs(dispatcher, queue):
    # Each inner job waits for the other to be running.
    inner = [Job(jobs.meet, "x", "y", 1), Job(jobs.meet, "y", "x", 2)]
    composite = put(queue, parallel(*inner))
    result = wait_for_result(composite)
    assert result == tuple(inner)
    assert [job.result for job in result] == [1, 2]


def test_parallel_with_postprocess(dispatcher, queue):
    composite = put(queue, parallel(
        Job(jobs.meet, "x", "y", "x"), Job(jobs.meet, "y", "x", "y"),
        postprocess=jobs.summarize,
    ))
    assert wait_for_result(composite) == ["x", "y"]


def test_failures_inside_are_visible_to_the_postprocess(dispatcher, queue):
    serial_job = put(queue, serial(
        Job(jobs.boom, "first failed"), Job(jobs.step, "b", 2),
        postprocess=jobs.summarize,
    ))
    parallel_job = put(queue, parallel(
        Job(jobs.step, "c", 3), Job(jobs.boom, "second failed"),
        postprocess=jobs.summarize,
    ))
    assert wait_for_result(serial_job) == ["failed: ValueError: first failed", 2]
    assert wait_for_result(parallel_job) == [3, "failed: ValueError: second failed"]


def test_a_failing_postprocess_is_the_composites_failure(dispatcher, queue):
    composite = put(queue, serial(Job(jobs.step, "a", 1), postprocess=jobs.boom))
    result = wait_for_result(composite)
    assert result.check(ValueError)
    assert "<plone.app.asyncjobs.engine.job.Job" in result.getErrorMessage()


def test_plain_callables_are_wrapped_in_jobs(dispatcher, queue):
    composite = put(queue, parallel(jobs.answer, jobs.answer, postprocess=jobs.summarize))
    assert wait_for_result(composite) == [42, 42]


def test_inner_jobs_run_in_the_queue_of_the_composite(dispatcher, queue):
    other = configure.get_queue(queue._p_jar, "other")
    inner = steps([("a", 1), ("b", 2)])
    composite = put(other, serial(*inner, postprocess=jobs.summarize))
    assert wait_for_result(composite) == [1, 2]
    assert all(job.queue is other for job in inner)
    postprocess = composite.kwargs["postprocess"]
    assert postprocess.queue is other
    assert list(postprocess.args) == inner


def test_work_can_be_added_while_a_serial_composite_runs(dispatcher, queue):
    first = Job(jobs.extend, None, "added", 2)
    composite = serial(first, postprocess=jobs.summarize)
    first.args[0] = composite  # the inner job appends to its composite
    put(queue, composite)
    assert wait_for_result(composite) == ["extended", 2]
    assert jobs.log == [("start", "added"), ("end", "added")]


def test_work_added_before_the_start_runs_too(dispatcher, queue):
    composite = parallel(Job(jobs.step, "a", 1), postprocess=jobs.summarize)
    composite.args.append(Job(jobs.step, "b", 2))
    put(queue, composite)
    assert wait_for_result(composite) == [1, 2]


def test_a_waiting_job_is_not_rerun_when_its_dispatcher_stops(queues, queue, start_dispatcher):
    # Given up with the dispatcher's other jobs, it was interrupted: its
    # callable ran again at every stop, and failed after ten.
    started = start_dispatcher()
    outer = queue.put(Job(jobs.returns_job_due_later, 41))
    commit(queue)
    wait_until(lambda: outer.waiting_for_job, sync=lambda: sync(outer))
    assert configure.stop(started)
    sync(outer)
    assert outer.status == status.ACTIVE and outer.waiting_for_job
    assert (outer.attempts, outer.interruptions) == (1, 0)
    inner = outer.result
    queue.remove(inner, completing=True)  # run here and now:
    inner()  # its completion completes the job waiting for it
    sync(outer)
    assert outer.status == status.COMPLETED and outer.result == 42 and outer.attempts == 1
    assert outer in queue.dispatchers[started.uuid]["main"].completed


def test_a_job_others_wait_for_is_cancelled_not_removed(dispatcher, queue):
    # Removed, it left the composite waiting for ever.
    inner = Job(jobs.echo, "inner")
    inner.begin_after = datetime.now(timezone.utc) + timedelta(hours=1)
    composite = put(queue, serial(inner))
    wait_until(lambda: inner.status == status.PENDING, sync=lambda: sync(inner))
    with pytest.raises(BadStatusError, match="other jobs wait for"):
        queue.remove(inner)
    inner.cancel()
    commit(queue)
    (result,) = wait_for_result(composite)
    assert result is inner and inner.result.check(CancelledError)


def test_a_cancelled_serial_composite_queues_no_more_parts(dispatcher, queue):
    # The cancel request was ignored: every part ran, and the postprocess.
    first = Job(jobs.wait_for_event, "first part", 1)
    rest = [Job(jobs.echo, 2), Job(jobs.echo, 3)]
    composite = put(queue, serial(first, *rest))
    wait_for_start(first)
    sync(queue)
    admin.cancel(composite, "enough")
    commit(queue)
    jobs.event("first part").set()
    result = wait_for_result(composite)
    assert result.check(CancelledError) and result.getErrorMessage() == "enough"
    assert first.result == 1 and [job.status for job in rest] == [status.NEW] * 2
    assert composite.kwargs["postprocess"].attempts == 0


def test_a_cancelled_parallel_composite_cancels_its_pending_parts(dispatcher, queue):
    running = Job(jobs.wait_for_event, "running part", 1)
    later = Job(jobs.echo, 2)
    later.begin_after = datetime.now(timezone.utc) + timedelta(hours=1)
    composite = put(queue, parallel(running, later))
    wait_for_start(running)
    wait_until(lambda: later.status == status.PENDING, sync=lambda: sync(later))
    admin.cancel(composite, "enough")
    commit(queue)
    assert later.result.check(CancelledError)
    assert cancel_request(running)[1] == "enough"
    jobs.event("running part").set()
    assert wait_for_result(composite).check(CancelledError)
    assert running.result == 1 and later.attempts == 0


def test_a_composite_cancelled_while_its_postprocess_waits_ends_cancelled(dispatcher, queue):
    # Its postprocess, queued but not started, ran anyway, and the composite
    # took its result: the cancel was ignored.
    postprocess = Job(collect)
    postprocess.begin_after = datetime.now(timezone.utc) + timedelta(hours=1)
    part = Job(jobs.echo, 1)
    composite = put(queue, serial(part, postprocess=postprocess))
    wait_until(lambda: postprocess.status == status.PENDING, sync=lambda: sync(postprocess))
    admin.cancel(composite, "enough")
    commit(queue)
    result = wait_for_result(composite)
    assert result.check(CancelledError) and result.getErrorMessage() == "enough"
    assert part.result == 1 and postprocess.attempts == 0


def test_pull_refuses_a_job_others_wait_for(dispatcher, queue):
    # Pulled, a composite's part was new again and the composite waited
    # for ever; remove() refused it already.
    inner = Job(jobs.echo, "inner")
    inner.begin_after = datetime.now(timezone.utc) + timedelta(hours=1)
    put(queue, serial(inner))
    wait_until(lambda: inner.status == status.PENDING, sync=lambda: sync(inner))
    with pytest.raises(BadStatusError, match="other jobs wait for"):
        queue.pull()
    assert inner.status == status.PENDING
