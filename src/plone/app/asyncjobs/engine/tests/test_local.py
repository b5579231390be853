"""What a running job can ask about its surroundings, and live annotations."""
import pytest

from plone.app.asyncjobs.engine import local
from plone.app.asyncjobs.engine import progress
from plone.app.asyncjobs.engine import status
from plone.app.asyncjobs.engine.exceptions import NotInJobError
from plone.app.asyncjobs.engine.job import Job
from plone.app.asyncjobs.engine.testing.waiting import wait_for_annotation
from plone.app.asyncjobs.engine.testing.waiting import wait_for_result
from plone.app.asyncjobs.engine.testing.waiting import wait_for_start
from plone.app.asyncjobs.engine.tests import jobs
from plone.app.asyncjobs.engine.tests.support import commit
from plone.app.asyncjobs.engine.tests.support import sync


def put(queue, job):
    job = queue.put(job)
    commit(queue)
    return job


def test_a_running_job_knows_its_job_queue_dispatcher_and_agent(dispatcher, queue):
    job = put(queue, Job(jobs.where_am_i))
    assert wait_for_result(job) == {
        "oid": job._p_oid,
        "queue": "",
        "dispatcher": str(dispatcher.uuid),
        "agent": "main",
        "reactor": True,
    }


def test_a_callback_is_the_current_job_while_it_runs(dispatcher, queue):
    job = Job(jobs.current_job_oid)
    callback = job.add_callback(Job(jobs.current_job_oid))
    put(queue, job)
    assert wait_for_result(job) == job._p_oid
    assert callback.result == callback._p_oid


@pytest.mark.parametrize("helper", [
    local.get_job, local.get_queue, local.get_dispatcher, local.get_reactor,
    local.get_agent_name,
])
def test_the_helpers_refuse_outside_a_job(helper):
    with pytest.raises(NotInJobError, match="only works in code run by a job"):
        helper()
    assert issubclass(NotInJobError, LookupError)


def test_a_job_called_in_this_thread_is_current_but_has_no_dispatcher(queue):
    job = put(queue, Job(jobs.not_in_a_job))
    with local.running(job):
        assert local.get_job() is job
        assert local.get_queue() is queue
        with pytest.raises(NotInJobError, match="no dispatcher here"):
            local.get_dispatcher()
    with pytest.raises(NotInJobError):
        local.get_job()


def test_a_live_annotation_is_visible_while_the_job_still_runs(dispatcher, queue, connect):
    job = put(queue, Job(jobs.announce_and_wait, "progress", 50))
    assert wait_for_annotation(job, "progress") == 50
    assert job.status == status.ACTIVE
    other = connect()
    assert other.get(job._p_oid).annotations["progress"] == 50
    jobs.event("progress").set()
    assert wait_for_result(job) == 50
    assert job.annotations["progress"] == 50


def test_get_live_annotation_waits_for_a_value_set_from_outside(dispatcher, queue):
    job = put(queue, Job(jobs.read_live_annotation, "go", 10))
    wait_for_start(job)
    local.set_live_annotation("go", "yes", job=job)
    assert wait_for_result(job) == "yes"


def test_get_live_annotation_returns_the_default_after_the_timeout(dispatcher, queue):
    job = put(queue, Job(jobs.read_live_annotation, "never", 0.2))
    assert wait_for_result(job) == "no annotation"


def test_live_annotations_from_outside_a_job_name_the_job(queue, connect):
    job = put(queue, Job(jobs.echo, 1))
    local.set_live_annotation("note", ("a", 1), job=job)
    assert local.get_live_annotation("note", job=job) == ("a", 1)
    assert local.get_live_annotation("missing", default="none", job=job) == "none"
    sync(job)
    assert job.annotations["note"] == ("a", 1)
    with pytest.raises(ValueError, match="is not stored in a database yet"):
        local.set_live_annotation("note", 1, job=Job(jobs.echo, 1))
    with pytest.raises(NotInJobError):
        local.set_live_annotation("note", 1)


def test_progress_reports_are_finite_numbers(queue):
    job = put(queue, Job(jobs.echo, 1))
    progress.report_progress(3, 10, "files", job=job)
    sync(job)
    assert progress.progress_of(job) == progress.Progress(3, 10, "files")
    # The console and REST serve reports as JSON, which has no NaN or
    # infinity: they were stored, and browsers refused the answers.
    for done, total in [(-1, 10), (float("nan"), 10), (float("inf"), None), (True, None),
                        (1, 0), (1, float("nan")), (1, float("inf")), (1, "10")]:
        with pytest.raises(ValueError, match="must be a finite number"):
            progress.report_progress(done, total, job=job)
    sync(job)
    assert progress.progress_of(job) == progress.Progress(3, 10, "files")


def test_progress_of_reads_zc_async_fractions_and_ignores_other_values(queue):
    # zc.async's setLiveAnnotation("progress", 0.5) made every console page
    # and REST answer showing the job fail (Progress(*0.5)).
    job = put(queue, Job(jobs.echo, 1))
    for stored, expected in [(0.5, progress.Progress(0.5, 1.0)), ("half", None),
                             ((1, 2, "m", "extra"), None), (("1", 2), None),
                             ((3, None, "files"), progress.Progress(3, None, "files"))]:
        local.set_live_annotation(progress.PROGRESS_KEY, stored, job=job)
        sync(job)
        assert progress.progress_of(job) == expected
    assert progress.progress_of(job).fraction is None
    local.set_live_annotation(progress.PROGRESS_KEY, 0.25, job=job)
    sync(job)
    assert progress.progress_of(job).fraction == 0.25


def test_progress_messages_are_cut(queue):
    job = put(queue, Job(jobs.echo, 1))
    progress.report_progress(1, 2, "m" * 3_000_000, job=job)
    sync(job)
    message = progress.progress_of(job).message
    assert message == "m" * progress.MESSAGE_LIMIT + "[...TRUNCATED...]"
