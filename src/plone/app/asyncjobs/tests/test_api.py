"""The preferred spelling: plone.app.asyncjobs.api."""
from datetime import datetime
from datetime import timedelta
from datetime import timezone

import pytest
from plone import api
from plone.app.testing import TEST_USER_ID
from plone.app.testing import setRoles
from zope.component import getUtility

from plone.app.asyncjobs import api as jobs_api
from plone.app.asyncjobs.engine.queue import Queues
from plone.app.asyncjobs.engine.retry import NeverRetry
from plone.app.asyncjobs.engine.status import COMPLETED
from plone.app.asyncjobs.interfaces import IAsyncService
from plone.app.asyncjobs.interfaces import IContextJob
from plone.app.asyncjobs.service.queues import add_queue
from plone.app.asyncjobs.testing import wait_for_all_jobs
from plone.app.asyncjobs.testing import wait_for_result
from plone.app.asyncjobs.tests import jobs


def test_queue_job_passes_arguments_and_keywords(portal):
    job = jobs_api.queue_job(jobs.add, portal, 1, b=41)
    assert IContextJob.providedBy(job)
    assert list(job.args) == [1] and dict(job.kwargs) == {"b": 41}
    assert job.quota_names == ()
    assert wait_for_result(job) == 42


@pytest.mark.parametrize("delay", [timedelta(seconds=0.2), 0.2])
def test_queue_job_with_a_delay(portal, delay):
    before = datetime.now(timezone.utc)
    job = jobs_api.queue_job(jobs.add, portal, 1, delay=delay)
    assert job.begin_after >= before + timedelta(seconds=0.2)
    assert wait_for_result(job) == 1
    assert job.active_start >= job.begin_after


def test_queue_job_at_a_datetime(portal):
    when = datetime.now(timezone.utc) + timedelta(seconds=0.1)
    job = jobs_api.queue_job(jobs.add, portal, 1, delay=when)
    assert job.begin_after == when


def test_queue_job_in_a_queue_with_quota_deadline_and_retry_policy(portal):
    queue = add_queue(jobs_api.get_queues(), "mail")
    queue.quotas.create("smtp", size=2)
    job = jobs_api.queue_job(
        jobs.add, portal, 3, queue="mail", quota_names=("smtp",),
        begin_by=timedelta(minutes=1), retry_policy="never")
    assert job.queue is queue
    assert job.quota_names == ("smtp",)
    assert job.begin_by == timedelta(minutes=1)
    assert job.retry_policy_factory == "never"
    assert wait_for_result(job) == 3
    assert type(job.get_retry_policy()) is NeverRetry  # every policy is a NeverRetry


def test_an_unknown_retry_policy_is_refused(portal):
    with pytest.raises(ValueError, match="unknown retry policy"):
        jobs_api.queue_job(jobs.add, portal, 3, retry_policy="sometimes")


def test_get_queues_and_get_queue(portal):
    queues = jobs_api.get_queues()
    assert isinstance(queues, Queues)
    assert jobs_api.get_queue() is queues[""]
    assert jobs_api.get_queue("") is queues[""]
    assert jobs_api.get_queues(portal) is queues
    with pytest.raises(LookupError):
        jobs_api.get_queue("missing")


def test_queue_serial_jobs(portal):
    composite = jobs_api.queue_serial_jobs(
        jobs_api.make_job(jobs.timed, portal, 0.1, "first"),
        jobs_api.make_job(jobs.add, portal, 1, b=1),
        retry_policy="never",
    )
    first, second = wait_for_result(composite)
    assert second.result == 2
    assert first.retry_policy_factory == second.retry_policy_factory == "never"
    assert first.active_end <= second.active_start


def test_queue_parallel_jobs_with_a_delay(portal):
    # Compared with the time before the call, not after: a slow moment
    # between the call and the check must not decide the test.
    before = datetime.now(timezone.utc)
    composite = jobs_api.queue_parallel_jobs(
        jobs_api.make_job(jobs.add, portal, 1),
        jobs_api.make_job(jobs.add, portal, 2),
        delay=0.1,
    )
    assert composite.begin_after >= before + timedelta(seconds=0.1)
    inner = wait_for_result(composite)
    assert [job.result for job in inner] == [1, 2]
    # The composite completes as soon as its postprocess has; an inner job
    # may still be finishing its own callbacks then.
    assert [wait_for_result(job) for job in inner] == [1, 2]
    assert all(job.status == COMPLETED for job in inner)


def test_site_settings_choose_the_default_queue_and_retry_policy(portal):
    api.portal.set_registry_record("plone.app.asyncjobs.default_queue", "site-jobs")
    api.portal.set_registry_record("plone.app.asyncjobs.default_retry_policy", "never")
    job = jobs_api.queue_job(jobs.add, portal, 1)
    assert job.queue.name == "site-jobs"
    assert job.retry_policy_factory == "never"
    explicit = jobs_api.queue_job(jobs.add, portal, 1, queue="", retry_policy="default")
    assert explicit.queue.name == ""
    assert explicit.retry_policy_factory == "default"
    wait_for_all_jobs()
    assert job.result == 1


def test_wait_for_all_jobs_reports_failures(portal):
    jobs_api.queue_job(jobs.fail, portal, "reported")
    with pytest.raises(AssertionError, match="reported"):
        wait_for_all_jobs()
    failed = jobs_api.queue_job(jobs.fail, portal, "tolerated")
    done = wait_for_all_jobs(assert_successful=False)
    assert failed in done
    assert jobs_api.is_failure(failed.result)
    assert "tolerated" in jobs_api.traceback_text(failed.result)


def test_queue_jobs_queues_a_job_per_info_with_common_options(portal):
    queue = add_queue(jobs_api.get_queues(), "bulk")
    queue.quotas.create("one", size=1)
    queued = jobs_api.queue_jobs(
        [jobs_api.make_job(jobs.add, portal, number, b=1) for number in range(5)],
        queue="bulk", quota_names=("one",), priority=3, retry_policy="never")
    assert all(IContextJob.providedBy(job) for job in queued)
    assert [wait_for_result(job) for job in queued] == [1, 2, 3, 4, 5]
    assert {(job.priority, job.quota_names, job.retry_policy_factory) for job in queued} == {
        (3, ("one",), "never")}
    # A quota of size one keeps the order of one transaction's jobs.
    starts = [job.active_start for job in queued]
    assert starts == sorted(starts)


def test_queue_jobs_refuses_bad_options_at_the_call(portal):
    with pytest.raises(ValueError, match="unknown retry policy"):
        jobs_api.queue_jobs([jobs_api.make_job(jobs.add, portal, 1)], retry_policy="sometimes")
    assert jobs_api.queue_jobs([]) == []


@pytest.mark.parametrize("options, error, message", [
    ({"delay": True}, TypeError, "delay must be"),
    ({"queue": 0}, TypeError, "queue must be a queue name"),
    ({"queue": b""}, TypeError, "queue must be a queue name"),
    ({"queue": [""]}, TypeError, "queue must be a queue name"),
])
def test_bad_options_are_refused_clearly(portal, options, error, message):
    with pytest.raises(error, match=message):
        jobs_api.queue_job(jobs.add, portal, 1, **options)
    assert len(jobs_api.get_queue()) == 0


def test_the_service_puts_jobs_only(portal):
    # A bare function was queued without context, site or user.
    service = getUtility(IAsyncService)
    with pytest.raises(TypeError, match="put takes a job"):
        service.put(jobs.add)
    with pytest.raises(TypeError, match="put takes a job"):
        service.put_many([service.wrapJob(jobs_api.make_job(jobs.add, portal, 1)), jobs.add])
    assert len(jobs_api.get_queue()) == 0


def test_a_context_stored_nowhere_is_refused_at_the_call(portal):
    """The worker finds a job's context by its path: one that is not
    stored there would fail the job with ContextNotFoundError."""
    from OFS.SimpleItem import SimpleItem

    loose = SimpleItem()
    loose.id = "loose"
    for context in (loose, loose.__of__(portal)):
        with pytest.raises(ValueError, match="not stored at its path"):
            jobs_api.queue_job(jobs.add, context, 1)
    setRoles(portal, TEST_USER_ID, ["Manager"])
    new = api.content.create(container=portal, type="Document", id="new")  # not committed
    assert wait_for_result(jobs_api.queue_job(jobs.add, new, 1)) == 1
