"""IJobSuccess / IJobFailure are notified in the worker, in the job's context."""
import pytest
from plone import api
from plone.app.testing import TEST_USER_ID
from plone.app.testing import setRoles
from zope.component import getUtility

from plone.app.asyncjobs import api as jobs_api
from plone.app.asyncjobs.engine.status import COMPLETED
from plone.app.asyncjobs.interfaces import IAsyncService
from plone.app.asyncjobs.interfaces import IJobFailure
from plone.app.asyncjobs.interfaces import IJobSuccess
from plone.app.asyncjobs.service.events import JobFailure
from plone.app.asyncjobs.service.events import JobSuccess
from plone.app.asyncjobs.service.exceptions import ContextNotFoundError
from plone.app.asyncjobs.service.exceptions import UserNotFoundError
from plone.app.asyncjobs.testing import wait_for_all_jobs
from plone.app.asyncjobs.testing import wait_for_result
from plone.app.asyncjobs.tests import jobs


def test_success_is_notified_in_the_jobs_context(portal, recorded_events):
    job = jobs_api.queue_job(jobs.add, portal, 20, 22)
    assert wait_for_result(job) == 42
    [event] = recorded_events
    assert event["kind"] == "JobSuccess"
    assert event["outcome"] == 42
    assert event["job_oid"] == job._p_oid
    assert event["context"] == "/plone"
    assert event["site"] == "plone"
    assert event["user"] == TEST_USER_ID
    assert event["thread"].startswith("asyncjobs worker")


def test_failure_is_notified_with_the_failure(portal, recorded_events):
    job = getUtility(IAsyncService).queueJob(jobs.fail, portal, "broken")
    wait_for_result(job)
    [event] = recorded_events
    assert event["kind"] == "JobFailure"
    assert event["outcome"].check(ValueError)
    assert event["outcome"].getErrorMessage() == "broken"
    assert event["user"] == TEST_USER_ID


def test_failure_of_a_deleted_context_is_notified_without_context(portal, recorded_events):
    setRoles(portal, TEST_USER_ID, ["Manager"])
    doc = api.content.create(container=portal, type="Document", id="doc")
    wait_for_all_jobs()
    job = jobs_api.queue_job(jobs.add, doc, 1)
    api.content.delete(obj=doc)
    wait_for_result(job)
    [event] = recorded_events
    assert event["kind"] == "JobFailure"
    assert event["outcome"].check(ContextNotFoundError)
    assert event["context"] is None
    assert event["site"] == "plone"


@pytest.mark.parametrize("queue_batch", [jobs_api.queue_parallel_jobs,
                                         jobs_api.queue_serial_jobs])
def test_a_batch_notifies_once_when_it_has_finished(portal, recorded_events, queue_batch):
    # As plone.app.async did: its parts notified one event each, so that a
    # ported subscriber sending "export done" mail sent one per part.
    batch = queue_batch(jobs_api.make_job(jobs.add, portal, 1),
                        jobs_api.make_job(jobs.fail, portal, "x"))
    parts = wait_for_result(batch)
    [event] = recorded_events
    assert event["kind"] == "JobSuccess" and event["job_oid"] == batch._p_oid
    assert [part.status for part in parts] == [COMPLETED, COMPLETED]
    assert parts[1].result.check(ValueError)
    assert event["context"] == "/plone" and event["user"] == TEST_USER_ID


def test_an_empty_batch_finishes_at_once(portal, recorded_events):
    # zc.async's parallel() of no job completed with (): a ported
    # queueParallelJobs(*[... for item in items]) of no items failed.
    batch = getUtility(IAsyncService).queueParallelJobs()
    assert wait_for_result(batch) == ()
    [event] = recorded_events
    assert event["kind"] == "JobSuccess" and event["site"] == "plone"


def test_failure_is_notified_as_anonymous_when_the_user_is_gone(portal, recorded_events):
    # The event callback restored the deleted user too, failed, and
    # notified nothing: subscribers alerting on failures never ran.
    setRoles(portal, TEST_USER_ID, ["Manager"])
    api.user.create(email="gone@example.org", username="gone", password="secret-1234")
    with api.env.adopt_user(username="gone"):
        job = jobs_api.queue_job(jobs.add, portal, 1)
    api.user.delete(username="gone")
    assert wait_for_result(job).check(UserNotFoundError)
    [event] = recorded_events
    assert event["kind"] == "JobFailure" and event["outcome"].check(UserNotFoundError)
    assert event["user"] is None and event["site"] == "plone"


def test_event_classes():
    success = JobSuccess(1, "job", "context")
    failure = JobFailure("failure", "job")
    assert IJobSuccess.providedBy(success) and not IJobFailure.providedBy(success)
    assert IJobFailure.providedBy(failure)
    assert (success.object, success.job, success.context) == (1, "job", "context")
    assert failure.context is None
