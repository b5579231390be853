"""Cancelling a running job: the request, and how the job ends."""
import pytest

from plone.app.asyncjobs.engine import admin
from plone.app.asyncjobs.engine import local
from plone.app.asyncjobs.engine import status
from plone.app.asyncjobs.engine import workers
from plone.app.asyncjobs.engine.cancel import cancel_request
from plone.app.asyncjobs.engine.exceptions import BadStatusError
from plone.app.asyncjobs.engine.exceptions import CancelledError
from plone.app.asyncjobs.engine.failure import is_failure
from plone.app.asyncjobs.engine.ids import object_id
from plone.app.asyncjobs.engine.job import Job
from plone.app.asyncjobs.engine.testing.waiting import wait_for_result
from plone.app.asyncjobs.engine.testing.waiting import wait_until
from plone.app.asyncjobs.engine.tests import jobs
from plone.app.asyncjobs.engine.tests.support import commit
from plone.app.asyncjobs.engine.tests.support import sync


REASON = "cancelled while running by admin"


def start(queue, how, key, **attributes):
    job = queue.put(Job(jobs.run_until_cancelled, key, how))
    for name, value in attributes.items():
        setattr(job, name, value)
    callback = job.add_callback(Job(jobs.describe))
    commit(queue)
    assert jobs.event(f"{key} running").wait(jobs.WAIT)
    wait_until(lambda: job.status == status.ACTIVE, sync=lambda: sync(job))
    admin.cancel(job, REASON)
    commit(queue)
    return job, callback


def assert_cancelled(job, callback):
    result = wait_for_result(job)
    assert is_failure(result) and result.check(CancelledError)
    assert result.getErrorMessage() == REASON
    assert "CancelledError" in wait_for_result(callback)


def recorded_outcome(dispatcher, job):
    """What the dispatcher recorded (``async job``), once the thread did:
    the result is committed a moment before."""
    return wait_until(lambda: dispatcher.job_info(*object_id(job))["completed"] is not None
                      and dispatcher.job_info(*object_id(job)))


@pytest.mark.parametrize("how", ["poll", "check"])
def test_a_job_that_honours_the_request_ends_cancelled_and_its_callbacks_run(
        dispatcher, queue, how):
    job, callback = start(queue, how, how)
    assert_cancelled(job, callback)
    assert jobs.calls[how] == 1
    recorded = recorded_outcome(dispatcher, job)
    assert recorded["cancelled"] is True and recorded["failed"] is True
    assert recorded["result"].endswith(f"CancelledError: {REASON}")


def test_a_cancelled_job_is_not_rerun_even_by_a_policy_that_retries_every_error(
        dispatcher, queue):
    job, callback = start(queue, "check", "delayed", retry_policy_factory="delayed")
    assert_cancelled(job, callback)
    assert jobs.calls["delayed"] == 1 and job.attempts == 1


def test_a_job_that_ignores_the_request_runs_on_to_its_own_result(dispatcher, queue):
    job, callback = start(queue, "ignore", "deaf")
    assert cancel_request(job)[1] == REASON and job.status == status.ACTIVE
    jobs.event("deaf release").set()
    assert wait_for_result(job) == "finished"
    assert recorded_outcome(dispatcher, job)["cancelled"] is False
    assert "finished" in wait_for_result(callback)


def test_only_pending_and_running_jobs_can_be_cancelled(queue):
    job = Job(jobs.echo, 1)
    with pytest.raises(BadStatusError, match="only a pending or running job"):
        admin.cancel(job)


def test_outside_worker_threads_nobody_asks_a_job_to_stop():
    assert not local.cancel_requested()
    local.check_cancelled()


def test_a_dispatcher_poll_passes_the_request_on(dispatcher, queue, monkeypatch):
    monkeypatch.setattr(workers, "VERIFY_EVERY", 3600)  # the thread never asks itself
    job, callback = start(queue, "poll", "told")
    assert_cancelled(job, callback)


def test_between_polls_the_thread_asks_the_database_itself(
        start_dispatcher, queue, monkeypatch):
    start_dispatcher(poll_interval=3600)  # no poll after the first: jobs come by wake-up
    monkeypatch.setattr(workers, "VERIFY_EVERY", 0)
    job, callback = start(queue, "check", "asked")
    assert_cancelled(job, callback)
