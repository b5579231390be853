"""Listing jobs page by page, and the administrator's actions on them."""
import logging
import uuid
from datetime import timedelta

import pytest

from plone.app.asyncjobs.engine import admin
from plone.app.asyncjobs.engine import listing
from plone.app.asyncjobs.engine import status
from plone.app.asyncjobs.engine.configure import get_queue
from plone.app.asyncjobs.engine.exceptions import BadStatusError
from plone.app.asyncjobs.engine.exceptions import CancelledError
from plone.app.asyncjobs.engine.failure import is_failure
from plone.app.asyncjobs.engine.ids import object_id
from plone.app.asyncjobs.engine.internal import internal
from plone.app.asyncjobs.engine.job import Job
from plone.app.asyncjobs.engine.testing.waiting import wait_for_result
from plone.app.asyncjobs.engine.testing.waiting import wait_until
from plone.app.asyncjobs.engine.tests import jobs
from plone.app.asyncjobs.engine.tests.support import commit
from plone.app.asyncjobs.engine.tests.support import sync


def run_here(queue, agent, job):
    """Claim ``job`` for ``agent`` and run it in this thread; sweep it."""
    queue.dispatchers.ping(agent.parent.UUID)  # the test clock may have moved on
    commit(queue)
    assert agent.claim_job() is job
    job()
    agent.sweep()
    commit(queue)


@pytest.fixture
def agent(record):
    return record(uuid.UUID(int=7))["main"]


def keys_and_jobs(page):
    return [job for _, job in page.jobs]


def test_pending_jobs_are_listed_by_due_time_a_page_at_a_time(queue, queues, clock):
    due = [queue.put(Job(jobs.echo, n), begin_after=clock.now + timedelta(minutes=10 - n))
           for n in range(5)]
    commit(queue)
    all_queues = queue.parent
    first = listing.find_jobs(all_queues, listing.PENDING, size=2)
    assert keys_and_jobs(first) == [due[4], due[3]]
    second = listing.find_jobs(all_queues, listing.PENDING, size=2, after=first.after)
    assert keys_and_jobs(second) == [due[2], due[1]]
    last = listing.find_jobs(all_queues, listing.PENDING, size=2, after=second.after)
    assert keys_and_jobs(last) == [due[0]] and last.after is None
    latest_first = listing.find_jobs(all_queues, listing.PENDING, reverse=True, size=5)
    assert keys_and_jobs(latest_first) == due
    window = listing.find_jobs(all_queues, listing.PENDING, since=clock.now + timedelta(minutes=7),
                               until=clock.now + timedelta(minutes=9))
    assert keys_and_jobs(window) == [due[3], due[2], due[1]]


def test_finished_jobs_are_listed_newest_first_succeeded_and_failed_apart(
        queue, agent, clock):
    done = []
    for callable_ in (jobs.echo, jobs.boom, jobs.echo, jobs.boom):
        job = queue.put(Job(callable_, "x") if callable_ is jobs.echo else Job(callable_))
        run_here(queue, agent, job)
        done.append(job)
        clock.advance(minutes=1)
    all_queues = queue.parent
    assert keys_and_jobs(listing.find_jobs(all_queues, listing.SUCCEEDED)) == [done[2], done[0]]
    assert keys_and_jobs(listing.find_jobs(all_queues, listing.FAILED)) == [done[3], done[1]]
    assert keys_and_jobs(listing.find_jobs(all_queues, listing.FAILED, reverse=True)) == [
        done[1], done[3]]
    assert listing.count_jobs(queue) == {"pending": 0, "active": 0, "completed": 2, "failed": 2}
    assert keys_and_jobs(listing.find_jobs(all_queues, listing.FAILED, queue_names=["other"])) == []


def test_a_filtered_listing_stops_at_its_scan_limit_and_says_where(queue, agent):
    finished = []
    for n in range(6):
        job = queue.put(Job(jobs.echo, n))
        run_here(queue, agent, job)
        finished.append(job)
    odd = lambda job: job.result % 2 == 1  # noqa: E731
    page = listing.find_jobs(queue.parent, listing.SUCCEEDED, match=odd, size=2, scan_limit=3)
    assert keys_and_jobs(page) == [finished[5], finished[3]] and page.scanned == 3
    page = listing.find_jobs(queue.parent, listing.SUCCEEDED, match=odd, size=3, scan_limit=3)
    assert page.exhausted and page.scanned == 3 and keys_and_jobs(page) == [finished[5], finished[3]]
    rest = listing.find_jobs(queue.parent, listing.SUCCEEDED, match=odd, size=3, after=page.after)
    assert keys_and_jobs(rest) == [finished[1]] and not rest.exhausted and rest.after is None


def test_running_jobs_are_listed_latest_start_first(queue, agent, clock):
    for number in (1, 2):
        queue.put(Job(jobs.echo, number))
    commit(queue)
    claimed = agent.claim_jobs(2)
    for job in claimed:
        job.mark_active()
        clock.advance(seconds=1)
    page = listing.find_jobs(queue.parent, listing.RUNNING)
    assert keys_and_jobs(page) == claimed[::-1]
    assert listing.count_jobs(queue)["active"] == 2


def test_bad_listing_arguments_are_refused(queue):
    with pytest.raises(ValueError, match="state must be one of"):
        listing.find_jobs(queue.parent, "lost")
    with pytest.raises(ValueError, match="size must be at least 1"):
        listing.find_jobs(queue.parent, listing.PENDING, size=0)


def test_cursors_round_trip_and_refuse_garbage():
    assert listing.decode_cursor(listing.encode_cursor((-12, 34))) == (-12, 34)
    for garbage in ("", "1", "a.b", "1.2.3"):
        with pytest.raises(ValueError, match="not a listing cursor"):
            listing.decode_cursor(garbage)


def test_cancel_completes_a_pending_job_with_a_failure_kept_in_its_queue(queue, conn):
    job = queue.put(Job(jobs.echo, 1))
    commit(queue)
    admin.cancel(job, "not wanted")
    commit(queue)
    assert job.status == status.COMPLETED and len(queue) == 0
    assert is_failure(job.result) and job.result.check(CancelledError)
    assert "not wanted" in str(job.result.value)
    assert job.queue is queue and job in queue.completed
    assert keys_and_jobs(listing.find_jobs(queue.parent, listing.FAILED)) == [job]
    with pytest.raises(BadStatusError, match="only a pending or running job can be cancelled"):
        admin.cancel(job)


def test_a_cancelled_jobs_callbacks_run_in_a_worker(dispatcher, queue):
    job = queue.put(Job(jobs.echo, 1), begin_after=queue_now(minutes=10))
    callback = job.add_callback(Job(jobs.describe))
    commit(queue)
    admin.cancel(job)
    commit(queue)
    result = wait_for_result(callback)
    assert "CancelledError" in result
    wait_until(lambda: job.status == status.COMPLETED, sync=lambda: sync(job))


def queue_now(**delta):
    from plone.app.asyncjobs.engine.clock import utcnow

    return utcnow() + timedelta(**delta)


def test_retry_queues_a_copy_with_the_same_work_and_callbacks(queue, agent, connect):
    job = queue.put(Job(jobs.boom, "first"), quota_names=())
    job.add_callback(Job(jobs.describe))
    job.retry_policy_factory = "never"
    run_here(queue, agent, job)
    assert is_failure(job.result)
    again = admin.retry(job)
    commit(queue)
    assert again is not job and again.status == status.PENDING and again.queue is queue
    assert again.callable is jobs.boom and list(again.args) == ["first"]
    assert again.retry_policy_factory == "never" and again.attempts == 0
    assert [cb.callable for cb in again.callbacks] == [jobs.describe]
    assert again.callbacks[0].status == status.NEW and again.callbacks[0] is not job.callbacks[0]
    assert again.annotations[admin.RETRY_OF] == object_id(job)[0]
    assert admin.retries(job) == (object_id(again)[0],)
    assert admin.find_job(connect(), object_id(again)[0]).args[0] == "first"
    with pytest.raises(BadStatusError, match="only a finished job can be retried"):
        admin.retry(again)


def test_every_retry_of_a_job_is_remembered(queue, agent):
    job = queue.put(Job(jobs.boom, "first"), quota_names=())
    job.retry_policy_factory = "never"
    run_here(queue, agent, job)
    first = admin.retry(job)
    second = admin.retry(job)
    commit(queue)
    assert admin.retries(job) == (object_id(first)[0], object_id(second)[0])
    # A job retried before every retry was kept names its last one.
    job.annotations[admin.RETRIED_AS] = object_id(second)[0]
    assert admin.retries(job) == (object_id(second)[0],)


def test_check_retry_refuses_what_retry_refuses(queue):
    job = queue.put(Job(jobs.echo, Job(jobs.echo, 1)), quota_names=())
    with pytest.raises(BadStatusError, match="only a finished job"):
        admin.check_retry(job)
    admin.cancel(job)
    with pytest.raises(BadStatusError, match="cannot be copied"):
        admin.check_retry(job)
    with pytest.raises(BadStatusError, match="cannot be copied"):
        admin.retry(job)


def test_a_job_whose_quota_was_removed_cannot_be_retried(queue, agent):
    # check_retry said nothing, then retry raised ValueError (a 500 in the
    # console, which expects BadStatusError).
    queue.quotas.create("slow", size=1)
    job = queue.put(Job(jobs.echo, 1), quota_names=("slow",))
    run_here(queue, agent, job)
    queue.quotas.remove("slow")
    for action in (admin.check_retry, admin.retry):
        with pytest.raises(BadStatusError, match="unknown quota name 'slow'"):
            action(job)


def test_a_callback_or_an_internal_job_cannot_be_retried_alone(queue, agent):
    # A callback's copy ran alone, without the job whose result it takes,
    # and as whoever the console user was rather than its job's user.
    job = queue.put(Job(jobs.echo, 1), quota_names=())
    callback = job.add_callback(Job(jobs.describe))
    run_here(queue, agent, job)
    internal_job = queue.put(internal(Job(jobs.echo, 2)), quota_names=())
    run_here(queue, agent, internal_job)
    assert callback.status == status.COMPLETED
    with pytest.raises(BadStatusError, match=f"a callback of job {object_id(job)[0]}"):
        admin.check_retry(callback)
    with pytest.raises(BadStatusError, match="the engine made for itself"):
        admin.retry(internal_job)
    admin.check_retry(job)


def test_a_copy_inherits_the_options_and_nothing_of_the_run(queue):
    job = queue.put(Job(jobs.echo, 1), quota_names=(), priority=2, timeout=30)
    job.failure_log_level = logging.WARNING
    job.group_commit = False
    job.future_run_state = "of this run only"  # an attribute copy() does not know
    again = job.copy()
    assert (again.priority, again.timeout, again.failure_log_level, again.group_commit) == (
        2, 30, logging.WARNING, False)
    assert "future_run_state" not in again.__dict__
    assert again.assigner_uuid is None and again.begin_after is None


def test_jobs_built_from_other_jobs_cannot_be_copied(queue):
    job = Job.bind(jobs.echo)
    with pytest.raises(ValueError, match="cannot be copied"):
        job.copy()  # its argument is the job itself
    callback = Job(jobs.echo, 1)
    parent = Job(jobs.echo, 2)
    parent.add_callbacks(success=jobs.echo)
    with pytest.raises(ValueError, match="add_callbacks"):
        parent.copy()
    assert callback.copy().callable is jobs.echo


def test_forget_and_purge_remove_finished_jobs(queue, agent, clock):
    old = queue.put(Job(jobs.echo, "old"))
    run_here(queue, agent, old)
    clock.advance(days=3)
    new = queue.put(Job(jobs.echo, "new"))
    run_here(queue, agent, new)
    pending = queue.put(Job(jobs.echo, "pending"))
    commit(queue)
    with pytest.raises(BadStatusError, match="only a finished job can be removed"):
        admin.forget(pending)
    admin.forget(new)
    assert new not in agent.completed
    with pytest.raises(LookupError, match="not in a history"):
        admin.forget(new)
    assert admin.purge(queue.parent, clock.now - timedelta(days=1)) == 1
    assert old not in agent.completed and listing.count_jobs(queue)["completed"] == 0


def test_find_job_refuses_unknown_oids_and_other_objects(queue, conn):
    with pytest.raises(LookupError, match="there is no job 999999"):
        admin.find_job(conn, 999999)
    with pytest.raises(LookupError, match="there is no job"):
        admin.find_job(conn, object_id(queue)[0])


def test_a_paused_dispatcher_claims_nothing_until_resumed(dispatcher, queue, conn):
    record = queue.dispatchers[dispatcher.uuid]
    record.pause()
    commit(queue)
    assert "paused" in repr(record)
    job = queue.put(Job(jobs.echo, 1))
    commit(queue)
    wait_until(lambda: len(dispatcher.polls) > 3)
    sync(job)
    assert job.status == status.PENDING
    record.resume()
    commit(queue)
    assert wait_for_result(job) == 1


def test_queue_completed_exists_on_first_use(queues, conn):
    queue = get_queue(conn, "other")
    assert queue._completed is None and len(queue.completed) == 0
