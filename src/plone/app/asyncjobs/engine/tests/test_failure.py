"""Failures: stored through ZODB with their traceback text, even for odd exceptions."""
import logging
import pickle

import pytest
import transaction
import ZODB
from twisted.python.failure import Failure
from ZODB.FileStorage import FileStorage

from plone.app.asyncjobs.engine import configure
from plone.app.asyncjobs.engine import failure as failures
from plone.app.asyncjobs.engine.failure import StoredFailure
from plone.app.asyncjobs.engine.failure import UnpicklableError
from plone.app.asyncjobs.engine.internal import internal
from plone.app.asyncjobs.engine.job import Job
from plone.app.asyncjobs.engine.testing.waiting import wait_for_result
from plone.app.asyncjobs.engine.tests import jobs
from plone.app.asyncjobs.engine.tests.support import commit
from plone.app.asyncjobs.engine.tests.support import sync


@pytest.fixture
def run_and_reload(tmp_path, start_dispatcher):
    """Run ``job`` in a worker, close the database, and load the job from
    the reopened FileStorage; return it (its database stays open)."""
    path = str(tmp_path / "Failures.fs")
    opened = []

    def run(job):
        db = ZODB.DB(FileStorage(path))
        started = start_dispatcher(db=db)
        manager = transaction.TransactionManager()
        connection = db.open(transaction_manager=manager)
        job = configure.get_queue(connection).put(job)
        manager.commit()
        wait_for_result(job)
        oid = job._p_oid
        connection.close()
        assert configure.stop(started)
        db.close()

        reopened = ZODB.DB(FileStorage(path))
        opened.append(reopened)
        return reopened.open(transaction_manager=transaction.TransactionManager()).get(oid)

    yield run
    for db in opened:
        db.close()


def test_a_failure_survives_the_database_with_its_traceback(run_and_reload):
    job = run_and_reload(Job(jobs.boom, "stored"))
    failure = job.result
    assert isinstance(failure, StoredFailure) and failures.is_failure(failure)
    assert failure.check(KeyError, ValueError) is ValueError
    assert failure.trap(ValueError) is ValueError
    with pytest.raises(ValueError, match="stored"):
        failure.trap(KeyError)
    assert failure.getErrorMessage() == "stored"
    text = failure.getTraceback()
    assert "Traceback" in text and "tests/jobs.py" in text
    assert "in boom" in text or ":boom" in text
    assert "ValueError: stored" in text
    assert failures.traceback_text(failure) == text
    assert "boom" in failures.traceback_text(failure, detail="brief")


def test_an_unpicklable_exception_is_stored_as_unpicklable_error(run_and_reload):
    job = run_and_reload(Job(jobs.raise_unpicklable))
    failure = job.result
    assert failure.check(UnpicklableError)
    assert failure.getErrorMessage() == (
        "plone.app.asyncjobs.engine.tests.jobs.HoldsLock: holding a lock"
    )
    text = failures.traceback_text(failure)
    assert "raise_unpicklable" in text  # the original traceback, not the stand-in's
    assert "HoldsLock: holding a lock" in text


def test_an_exception_that_cannot_be_unpickled_does_not_break_the_job(run_and_reload):
    job = run_and_reload(Job(jobs.raise_unloadable))
    failure = job.result
    assert failure.check(UnpicklableError)
    assert "NeedsTwoArguments: one and two" in failure.getErrorMessage()
    assert "raise_unloadable" in failures.traceback_text(failure)


def test_a_returned_failure_is_a_result_and_the_changes_are_kept(dispatcher, queue, conn):
    counter = conn.root()["counter"] = jobs.Counter()
    job = queue.put(Job(jobs.increment_and_return_failure, counter))
    commit(queue)
    result = wait_for_result(job)
    assert result.check(KeyError)
    sync(counter)
    assert counter.value == 1


@pytest.mark.parametrize("level, expected", [
    (None, logging.ERROR), (logging.WARNING, logging.WARNING),
])
def test_failures_are_logged_at_the_jobs_level(dispatcher, queue, caplog, level, expected):
    job = queue.put(Job(jobs.boom, "logged"), failure_log_level=level)
    callback = job.add_callback(Job(jobs.fail_times, "callback", 1))
    commit(queue)
    with caplog.at_level(logging.DEBUG, logger="plone.app.asyncjobs"):
        wait_for_result(job)
    records = {
        record.levelno for record in caplog.records
        if "failed:" in record.getMessage() and "logged" in record.getMessage()
    }
    assert records == {expected}
    assert any(
        record.levelno == logging.CRITICAL and "failure 1 of callback" in record.getMessage()
        for record in caplog.records
    ), "callbacks log their failures at CRITICAL"
    assert callback.result.check(ValueError)


def test_successes_are_logged_at_info_those_of_internal_jobs_at_debug(
        dispatcher, queue, caplog):
    job = queue.put(Job(jobs.echo, "mine"))
    job.add_callback(internal(Job(jobs.echo)))
    commit(queue)
    with caplog.at_level(logging.DEBUG, logger="plone.app.asyncjobs"):
        wait_for_result(job)
    levels = {record.getMessage().split("``")[1]: record.levelno
              for record in caplog.records if "succeeded with" in record.getMessage()}
    assert levels == {"plone.app.asyncjobs.engine.tests.jobs.echo('mine')": logging.INFO,
                      "plone.app.asyncjobs.engine.tests.jobs.echo()": logging.DEBUG}


# -- the helpers ----------------------------------------------------------------------

def test_capture_in_an_except_block_and_from_an_instance():
    try:
        raise KeyError("handled")
    except KeyError:
        caught = failures.capture()
    assert isinstance(caught, StoredFailure) and caught.check(KeyError)
    assert "test_failure.py" in caught.getTraceback()
    assert "KeyError: 'handled'" in caught.getTraceback()
    made = failures.capture(ValueError("made"))
    assert made.check(ValueError) and made.getErrorMessage() == "made"
    assert failures.storable(made) is made
    assert not failures.is_failure(ValueError("not a failure"))


def test_a_stored_failure_pickles_and_keeps_working():
    try:
        jobs.boom("pickled")
    except ValueError:
        stored = failures.capture()
    copy = pickle.loads(pickle.dumps(stored, protocol=3))
    assert isinstance(copy, StoredFailure)
    assert copy.check(ValueError) and copy.getErrorMessage() == "pickled"
    assert copy.getTraceback() == stored.getTraceback()


def test_storable_cleans_a_plain_failure():
    try:
        raise jobs.HoldsLock("in a plain failure")
    except jobs.HoldsLock:
        plain = Failure()
    assert plain.tb is not None
    stored = failures.storable(plain)
    assert stored.check(UnpicklableError)
    assert "in a plain failure" in stored.original_traceback
    pickle.dumps(stored)
