"""Every method of the IAsyncService utility (plone.app.async's API)."""
from datetime import datetime
from datetime import timedelta
from datetime import timezone

import pytest
import transaction
from zope.component import getUtility

from plone.app.asyncjobs.engine.exceptions import TimeoutError
from plone.app.asyncjobs.engine.failure import is_failure
from plone.app.asyncjobs.engine.queue import Queues
from plone.app.asyncjobs.engine.status import COMPLETED
from plone.app.asyncjobs.engine.status import PENDING
from plone.app.asyncjobs.interfaces import IAsyncService
from plone.app.asyncjobs.interfaces import IContextJob
from plone.app.asyncjobs.service import queues as queues_module
from plone.app.asyncjobs.service.service import makeJob
from plone.app.asyncjobs.testing import wait_for_all_jobs
from plone.app.asyncjobs.testing import wait_for_result
from plone.app.asyncjobs.tests import jobs


@pytest.fixture
def service(portal):
    return getUtility(IAsyncService)


def add_queue(service, name):
    return queues_module.add_queue(service.getQueues(), name)


def overlap(first, second):
    """Whether two (label, start, end) intervals overlap."""
    return first[1] < second[2] and second[1] < first[2]


def test_get_queues(service):
    queues = service.getQueues()
    assert isinstance(queues, Queues)
    assert list(queues) == [""]


def test_get_queues_of_a_context_reached_through_no_database(service, portal):
    # It named another database, or nothing: the current site's queues
    # would be a silent wrong answer.
    assert service.getQueues(portal) is service.getQueues()
    for context in ("x", object(), jobs):
        with pytest.raises(ValueError, match="not reached through a database"):
            service.getQueues(context)
        with pytest.raises(ValueError, match="not reached through a database"):
            service.getQueue(context=context)


def test_queue_job(service, portal):
    job = service.queueJob(jobs.add, portal, 1, b=2)
    assert IContextJob.providedBy(job)
    assert job.status == PENDING
    assert job.queue is service.getQueues()[""]
    assert job.quota_names == ("default",)
    assert wait_for_result(job) == 3


def test_queue_job_with_delay(service, portal):
    begin_after = datetime.now(timezone.utc) + timedelta(seconds=0.3)
    job = service.queueJobWithDelay(None, begin_after, jobs.add, portal, 40, 2)
    assert job.begin_after == begin_after
    assert job.begin_by is None
    assert wait_for_result(job) == 42
    assert job.active_start >= begin_after


def test_queue_job_with_a_passed_deadline_fails_with_timeout(service, portal):
    long_ago = datetime.now(timezone.utc) - timedelta(hours=2)
    job = service.queueJobWithDelay(timedelta(hours=1), long_ago, jobs.add, portal, 1)
    result = wait_for_result(job)
    assert is_failure(result) and result.check(TimeoutError)


def test_queue_job_refuses_a_naive_begin_after(service, portal):
    with pytest.raises(ValueError, match="timezone-aware"):
        service.queueJobWithDelay(None, datetime.now(), jobs.add, portal, 1)


def test_queue_job_in_queue_by_name_and_by_object(service, portal):
    queue = add_queue(service, "other")
    by_name = service.queueJobInQueue("other", (), jobs.add, portal, 1)
    by_object = service.queueJobInQueue(queue, (), jobs.add, portal, 2)
    assert by_name.queue is queue and by_object.queue is queue
    assert wait_for_result(by_name) == 1
    assert wait_for_result(by_object) == 2


def test_queue_job_in_an_unknown_queue_is_refused(service, portal):
    with pytest.raises(LookupError, match="no job queue named 'typo'"):
        service.queueJobInQueue("typo", (), jobs.add, portal, 1)


def test_queue_job_in_queue_with_a_quota(service, portal):
    service.getQueues()[""].quotas.create("slow", size=1)
    first = service.queueJobInQueue("", ("slow",), jobs.timed, portal, 0.2, "first")
    second = service.queueJobInQueue("", ("slow",), jobs.timed, portal, 0.2, "second")
    assert first.quota_names == ("slow",)
    wait_for_all_jobs()
    assert not overlap(first.result, second.result)


def test_jobs_without_quota_run_at_the_same_time(service, portal):
    first = service.queueJobInQueue("", (), jobs.timed, portal, 0.3, "first")
    second = service.queueJobInQueue("", (), jobs.timed, portal, 0.3, "second")
    wait_for_all_jobs()
    assert overlap(first.result, second.result)


def test_an_unknown_quota_is_refused(service, portal):
    with pytest.raises(ValueError, match="unknown quota name 'nope'"):
        service.queueJobInQueue("", ("nope",), jobs.add, portal, 1)


def test_the_default_quota_is_used_when_the_queue_has_one(service, portal):
    """As in plone.app.async: quota_names None means ('default',), a
    quota of size 1 every queue gets when it is created."""
    assert service.getQueues()[""].quotas["default"].size == 1
    job = service.queueJob(jobs.add, portal, 1)
    assert job.quota_names == ("default",)
    explicit = service.queueJobInQueue("", (), jobs.add, portal, 1)
    assert explicit.quota_names == ()
    assert wait_for_result(job) == 1


def test_queue_job_in_queue_with_delay(service, portal):
    add_queue(service, "later")
    begin_after = datetime.now(timezone.utc) + timedelta(seconds=0.2)
    job = service.queueJobInQueueWithDelay(
        timedelta(minutes=5), begin_after, "later", (), jobs.add, portal, 5)
    assert job.queue.name == "later"
    assert job.begin_by == timedelta(minutes=5)
    assert wait_for_result(job) == 5


def test_make_job(service, portal):
    assert service.makeJob(jobs.add, portal, 1, b=2) == (jobs.add, portal, (1,), {"b": 2})
    assert makeJob(jobs.add, portal, 1) == (jobs.add, portal, (1,), {})


def test_queue_serial_jobs(service, portal):
    composite = service.queueSerialJobs(
        makeJob(jobs.timed, portal, 0.1, "first"),
        makeJob(jobs.timed, portal, 0, "second"),
        makeJob(jobs.fail, portal, "third fails"),
        makeJob(jobs.add, portal, 4),
    )
    inner = wait_for_result(composite)
    assert [job.status for job in inner] == [COMPLETED] * 4
    first, second, third, fourth = (job.result for job in inner)
    assert first[2] <= second[1]
    assert third.check(ValueError)
    assert fourth == 4
    assert all(IContextJob.providedBy(job) for job in inner)


def test_queue_parallel_jobs(service, portal):
    composite = service.queueParallelJobsInQueue(
        "", (),
        makeJob(jobs.timed, portal, 0.3, "first"),
        makeJob(jobs.timed, portal, 0.3, "second"),
    )
    first, second = (job.result for job in wait_for_result(composite))
    assert overlap(first, second)


def test_parallel_jobs_in_the_default_quota_run_one_at_a_time(service, portal):
    composite = service.queueParallelJobs(
        makeJob(jobs.timed, portal, 0.2, "first"),
        makeJob(jobs.timed, portal, 0.2, "second"),
    )
    first, second = (job.result for job in wait_for_result(composite))
    assert not overlap(first, second)


def test_queue_serial_jobs_in_queue(service, portal):
    queue = add_queue(service, "batch")
    queue.quotas.create("batch", size=1)
    composite = service.queueSerialJobsInQueue(
        "batch", ("batch",), makeJob(jobs.add, portal, 1), makeJob(jobs.add, portal, 2))
    assert composite.queue is queue
    assert composite.quota_names == ()
    inner = wait_for_result(composite)
    assert [job.result for job in inner] == [1, 2]
    assert [job.quota_names for job in inner] == [("batch",), ("batch",)]


def test_queue_parallel_jobs_in_queue_respects_the_quota(service, portal):
    queue = add_queue(service, "batch")
    queue.quotas.create("one-at-a-time", size=1)
    composite = service.queueParallelJobsInQueue(
        queue, ("one-at-a-time",),
        makeJob(jobs.timed, portal, 0.2, "first"),
        makeJob(jobs.timed, portal, 0.2, "second"),
    )
    first, second = (job.result for job in wait_for_result(composite))
    assert not overlap(first, second)


def test_batch_methods_check_quota_names_when_queuing(service, portal):
    with pytest.raises(ValueError, match="unknown quota name"):
        service.queueParallelJobsInQueue("", ("nope",), makeJob(jobs.add, portal, 1))
    assert wait_for_result(service.queueSerialJobs()) == ()  # as zc.async's parallel()


def test_queues_are_created_when_no_worker_ever_ran(service, portal, integration):
    from plone.app.asyncjobs.engine.queue import KEY
    from plone.app.asyncjobs.testing import dispatcher_running
    from plone.app.asyncjobs.testing import stop_dispatcher

    stop_dispatcher(integration["asyncjobsDispatcher"])
    root = portal._p_jar.root()
    del root[KEY]
    transaction.commit()
    job = service.queueJob(jobs.add, portal, 7)
    assert KEY in root
    transaction.commit()
    with dispatcher_running(integration["zodbDB"]):
        assert wait_for_result(job) == 7


def test_unpicklable_arguments_and_local_functions_are_refused(service, portal):
    def local(context):
        return None

    with pytest.raises(ValueError, match="module-level function"):
        service.queueJob(local, portal)
    with pytest.raises(ValueError, match="cannot be stored"):
        service.queueJob(jobs.add, portal, (x for x in ()))
    with pytest.raises(TypeError, match="physical path"):
        service.queueJob(jobs.add, object())
    with pytest.raises(ValueError, match="method of a stored object"):
        service.queueJob(portal.reindexObject, portal)
    transaction.abort()
