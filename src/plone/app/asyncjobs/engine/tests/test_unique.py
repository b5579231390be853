"""Unique jobs: one job per key while pending (or until completed), across connections."""
import pytest
from ZODB.POSException import ConflictError

from plone.app.asyncjobs.engine import admin
from plone.app.asyncjobs.engine import configure
from plone.app.asyncjobs.engine import status
from plone.app.asyncjobs.engine.exceptions import BadStatusError
from plone.app.asyncjobs.engine.exceptions import DuplicateJobError
from plone.app.asyncjobs.engine.job import Job
from plone.app.asyncjobs.engine.unique import WHILE_ACTIVE
from plone.app.asyncjobs.engine.unique import WHILE_PENDING
from plone.app.asyncjobs.engine.tests import jobs
from plone.app.asyncjobs.engine.tests.support import commit
from plone.app.asyncjobs.engine.tests.support import sync


def index(queue):
    return {key: job for tree in queue._unique for key, job in tree.items()}


def test_a_pending_job_with_the_key_is_returned_instead_of_queuing(queue):
    first = queue.put(Job(jobs.echo, "first"), unique_key="reindex /folder")
    commit(queue)
    again = queue.put(Job(jobs.echo, "again"), unique_key="reindex /folder")
    other = queue.put(Job(jobs.echo, "other"), unique_key="reindex /other")
    commit(queue)
    assert again is first
    assert len(queue) == 2 and set(queue) == {first, other}
    assert first.unique_key == "reindex /folder" and first.unique_while == WHILE_PENDING


def test_on_duplicate_raise_names_the_holder(queue):
    first = queue.put(Job(jobs.echo, 1), unique_key="k")
    with pytest.raises(DuplicateJobError, match="holds the unique key 'k'") as raised:
        queue.put(Job(jobs.echo, 2), unique_key="k", on_duplicate="raise")
    assert raised.value.job is first
    assert len(queue) == 1


def test_the_key_is_released_when_the_job_is_claimed(queue, record):
    agent = record()["main"]
    first = queue.put(Job(jobs.echo, 1), unique_key="k")
    commit(queue)
    assert agent.claim_job() is first
    assert index(queue) == {}
    second = queue.put(Job(jobs.echo, 2), unique_key="k")
    assert second is not first and len(queue) == 1
    assert index(queue) == {"k": second}


def test_while_active_the_key_is_held_until_the_completion_is_recorded(queue, record):
    agent = record()["main"]
    first = queue.put(Job(jobs.echo, 1), unique_key="k", unique_while=("active", "pending"))
    commit(queue)
    assert first.unique_while == WHILE_ACTIVE
    assert agent.claim_job() is first
    commit(queue)
    assert queue.put(Job(jobs.echo, 2), unique_key="k") is first
    assert first() == 1  # runs, commits its outcome
    assert first.status == status.COMPLETED
    # Completed: it no longer holds the key, even before its agent sweeps it.
    second = queue.put(Job(jobs.echo, 2), unique_key="k")
    assert second is not first
    agent.sweep([first])
    assert index(queue) == {"k": second}  # the sweep left the new holder alone
    queue.remove(second)
    assert index(queue) == {}


def test_cancel_and_fail_release_the_key(queue):
    cancelled = queue.put(Job(jobs.echo, 1), unique_key="k", unique_while=WHILE_ACTIVE)
    commit(queue)
    cancelled.cancel()
    assert index(queue) == {}
    failed = queue.put(Job(jobs.echo, 2), unique_key="k")
    assert failed is not cancelled
    failed.fail()
    assert failed.status == status.COMPLETED and index(queue) == {}
    assert queue.put(Job(jobs.echo, 3), unique_key="k") not in (cancelled, failed)


def test_a_requeued_job_takes_its_key_back_unless_another_holds_it(queue, record):
    agent = record()["main"]
    retried = queue.put(Job(jobs.echo, 1), unique_key="k")
    commit(queue)
    assert agent.claim_job() is retried
    retried.return_to_queue()
    commit(queue)
    assert index(queue) == {"k": retried}
    assert queue.put(Job(jobs.echo, 2), unique_key="k") is retried
    # Claimed again; meanwhile another job is put with the key.
    assert agent.claim_job() is retried
    newer = queue.put(Job(jobs.echo, 3), unique_key="k")
    retried.return_to_queue()
    commit(queue)
    assert len(queue) == 2 and index(queue) == {"k": newer}
    # Claiming the retried job does not release the newer one's key.
    queue.remove(retried)
    assert index(queue) == {"k": newer}
    queue.remove(newer)
    assert index(queue) == {}


def test_a_copy_of_a_unique_job_is_put_under_the_same_key(queue, record):
    agent = record()["main"]
    original = queue.put(Job(jobs.echo, 1), unique_key="k", unique_while=WHILE_ACTIVE)
    commit(queue)
    copy = original.copy()
    assert (copy.unique_key, copy.unique_while) == ("k", WHILE_ACTIVE)
    assert queue.put(copy) is original  # the original holds the key
    assert agent.claim_job() is original
    original()
    agent.sweep([original])
    assert queue.put(original.copy()) is not original
    assert len(queue) == 1


@pytest.mark.parametrize("options, error, message", [
    ({"unique_key": 1}, TypeError, "unique_key must be a string, not 1"),
    ({"unique_key": ""}, ValueError, "unique_key must not be empty"),
    ({"unique_key": "k", "unique_while": "pending"}, TypeError, "not the string 'pending'"),
    ({"unique_key": "k", "unique_while": ("active",)}, ValueError, "unique_while must be"),
    ({"unique_key": "k", "on_duplicate": "ignore"}, ValueError, "on_duplicate must be one of"),
])
def test_bad_unique_options_are_refused_at_put(queue, options, error, message):
    with pytest.raises(error, match=message):
        queue.put(Job(jobs.echo, 1), **options)
    assert len(queue) == 0 and index(queue) == {}


def test_two_connections_putting_one_key_at_once_make_one_job(queue, connect):
    commit(queue)
    other = configure.get_queue(connect())
    mine = queue.put(Job(jobs.echo, "mine"), unique_key="k")
    theirs = other.put(Job(jobs.echo, "theirs"), unique_key="k")
    commit(queue)
    with pytest.raises(ConflictError):
        commit(other)
    other._p_jar.transaction_manager.abort()
    # Retried, the second producer finds the first one's job.
    assert other.put(Job(jobs.echo, "theirs"), unique_key="k")._p_oid == mine._p_oid
    commit(other)
    sync(queue)
    assert len(queue) == 1 and theirs._p_jar is None


def test_a_duplicate_put_conflicts_with_the_claim_that_releases_the_key(queue, connect, record):
    agent = record()["main"]
    job = queue.put(Job(jobs.echo, 1), unique_key="k")
    commit(queue)
    producer = configure.get_queue(connect())
    assert producer.put(Job(jobs.echo, 2), unique_key="k")._p_oid == job._p_oid
    assert agent.claim_job() is job
    commit(queue)
    with pytest.raises(ConflictError):
        commit(producer)  # it was told of a job that is no longer pending
    producer._p_jar.transaction_manager.abort()
    assert producer.put(Job(jobs.echo, 2), unique_key="k")._p_oid != job._p_oid


def test_two_connections_putting_different_keys_at_once_do_not_conflict(queue, connect):
    queue.put(Job(jobs.echo, 0), unique_key="k0")  # the index exists
    commit(queue)
    other = configure.get_queue(connect())
    queue.put(Job(jobs.echo, 1), unique_key="k1")
    other.put(Job(jobs.echo, 2), unique_key="k2")
    commit(queue)
    commit(other)
    sync(queue)
    assert sorted(index(queue)) == ["k0", "k1", "k2"] and len(queue) == 3


def test_retrying_a_finished_unique_job_is_refused_while_another_holds_its_key(queue, record):
    agent = record()["main"]
    finished = queue.put(Job(jobs.echo, 1), unique_key="k")
    commit(queue)
    assert agent.claim_job() is finished
    finished()
    agent.sweep([finished])
    holder = queue.put(Job(jobs.echo, 2), unique_key="k")
    with pytest.raises(BadStatusError, match="holds its unique key 'k'"):
        admin.retry(finished)
    assert len(queue) == 1 and not admin.retries(finished)
    queue.remove(holder)
    retried = admin.retry(finished)
    assert retried.unique_key == "k" and index(queue) == {"k": retried}
