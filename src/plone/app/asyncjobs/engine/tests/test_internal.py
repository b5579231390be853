"""Jobs the engine makes for itself are marked, and histories do not keep them."""
import uuid

from plone.app.asyncjobs.engine import admin
from plone.app.asyncjobs.engine import listing
from plone.app.asyncjobs.engine.composite import serial
from plone.app.asyncjobs.engine.internal import internal
from plone.app.asyncjobs.engine.internal import is_internal
from plone.app.asyncjobs.engine.job import Job
from plone.app.asyncjobs.engine.testing.waiting import wait_for_result
from plone.app.asyncjobs.engine.tests import jobs
from plone.app.asyncjobs.engine.tests.support import commit


def test_a_cancel_resumes_callbacks_with_an_internal_job(queue):
    job = queue.put(Job(jobs.echo, 1))
    job.add_callback(Job(jobs.describe))
    commit(queue)
    admin.cancel(job)
    [resume] = list(queue)
    assert resume.callable == job.resume_callbacks
    assert is_internal(resume) and not is_internal(job)
    assert not is_internal(job.callbacks[0])


def test_histories_do_not_keep_internal_jobs(queue, record):
    agent = record(uuid.UUID(int=7))["main"]
    mine, bookkeeping = Job(jobs.echo, 1), internal(Job(jobs.echo, 2))
    for job in (mine, bookkeeping):
        queue.put(job)
    queue.dispatchers.ping(agent.parent.UUID)
    commit(queue)
    for _ in range(2):
        agent.claim_job()()
    agent.sweep()
    commit(queue)
    assert list(agent.completed) == [mine]
    assert bookkeeping not in agent.completed
    assert listing.count_jobs(queue)[listing.SUCCEEDED] == 1


def test_running_internal_jobs_are_not_counted(queue, record):
    agent = record(uuid.UUID(int=7))["main"]
    queue.put(internal(Job(jobs.echo, 2)))
    queue.dispatchers.ping(agent.parent.UUID)
    commit(queue)
    assert agent.claim_job() is not None
    assert listing.count_jobs(queue)[listing.RUNNING] == 0


def test_the_step_callbacks_of_a_serial_job_are_internal(queue, dispatcher):
    composite = queue.put(serial(Job(jobs.echo, 1), Job(jobs.echo, 2)))
    commit(queue)
    wait_for_result(composite)
    first = composite.args[0]
    assert [is_internal(callback) for callback in first.callbacks] == [True]
