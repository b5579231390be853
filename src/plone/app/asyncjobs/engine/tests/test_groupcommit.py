"""Group commit: the outcomes of short jobs that change nothing else share a commit.

A dispatcher with one worker thread, whose agent claims jobs in the order
they were queued, runs batches of jobs that all call ``jobs.group_member``;
the storage tells how many transactions were committed.  The first job of
each test warms the thread up: only a thread whose last job was short
claims a batch.
"""
import pytest
import transaction
import ZODB
from ZODB.FileStorage import FileStorage

from plone.app.asyncjobs.engine import configure
from plone.app.asyncjobs.engine import status
from plone.app.asyncjobs.engine import groupcommit
from plone.app.asyncjobs.engine import workers
from plone.app.asyncjobs.engine.failure import is_failure
from plone.app.asyncjobs.engine.job import Job
from plone.app.asyncjobs.engine.testing.waiting import wait_for_result
from plone.app.asyncjobs.engine.tests import jobs
from plone.app.asyncjobs.engine.tests.support import commit


def committed_transactions(db):
    return sum(1 for _ in db.storage.iterator())


@pytest.fixture
def short(monkeypatch):
    """Every job counts as short, however slow the disk of the machine
    running the tests makes their commits."""
    monkeypatch.setattr(workers, "SHORT_JOB", 5)


@pytest.fixture
def worker(short, start_dispatcher, queue):
    """A dispatcher with one worker thread taking jobs first come, first served."""
    dispatcher = start_dispatcher(agent_size=1)
    queue._p_jar.transaction_manager.begin()
    configure.get_queue(queue._p_jar).dispatchers[dispatcher.uuid]["main"].chooser = jobs.choose_first
    commit(queue)
    return dispatcher


def put_all(queue, *members, **warm_up):
    queued = [queue.put(Job(jobs.group_member, "warm-up", **warm_up))]
    queued += [queue.put(Job(jobs.group_member, *args, **kwargs)) for args, kwargs in members]
    commit(queue)
    return queued


def member(key, **kwargs):
    return (key,), kwargs


def test_short_jobs_that_change_nothing_else_share_their_result_commits(
        db, queue, worker):
    queued = put_all(queue, *(member(f"job {n}") for n in range(40)))
    before = committed_transactions(db)
    assert [wait_for_result(job) for job in queued[1:]] == [f"job {n}" for n in range(40)]
    assert all(jobs.calls[f"job {n}"] == 1 for n in range(40))
    assert all(job.attempts == 1 for job in queued)
    # One commit per job without grouping: 41 results, plus the claims.
    assert committed_transactions(db) - before < 20
    assert worker.statistics["outcomes grouped"] >= 30


@pytest.mark.parametrize("change", ["write_root", "hook"])
def test_a_job_that_changes_more_than_itself_commits_at_once(
        db, queue, worker, change):
    before = committed_transactions(db)
    queued = put_all(queue, *(member(f"job {n}", **{change: True}) for n in range(10)),
                     **{change: True})
    assert [wait_for_result(job) for job in queued[1:]] == [f"job {n}" for n in range(10)]
    # The put, then one commit for each of the 11 outcomes at least.
    assert committed_transactions(db) - before >= 12
    assert worker.statistics["outcomes grouped"] == 0
    if change == "hook":
        assert sorted(jobs.log) == sorted(("hook of", job.args[0]) for job in queued)
    else:
        queue._p_jar.transaction_manager.begin()
        assert queue._p_jar.root()["written by"] == "job 9"


def test_outcomes_lost_when_a_later_job_fails_are_stored_again(queue, worker):
    keys = ["job 0", "job 1", "job 2", "fail 3", "job 4", "job 5"]
    queued = put_all(queue, *(member(key) for key in keys))
    results = [wait_for_result(job) for job in queued[1:]]
    assert results[:3] + results[4:] == ["job 0", "job 1", "job 2", "job 4", "job 5"]
    assert is_failure(results[3]) and results[3].getErrorMessage() == "fail 3 fails"
    assert all(jobs.calls[key] == 1 for key in keys)
    assert all(job.attempts == 1 and job.active_start <= job.active_end for job in queued)
    assert worker.statistics["grouped outcomes stored again"] >= 1


def test_a_group_whose_commit_conflicts_is_stored_again(queue, worker):
    """The second job changes the first (waiting in the group) from another
    connection: the commit of both conflicts; the first job's outcome is
    stored again, the second runs again as its retry policy says.  Both are
    queued in one transaction, so that one batch claims both."""
    queue.put(Job(jobs.group_member, "warm-up"))
    first = queue.put(Job(jobs.group_member, "first"))
    second = queue.put(Job(jobs.group_member, "second", touch=first))
    commit(queue)
    assert wait_for_result(second) == "second"
    assert wait_for_result(first) == "first"
    assert (jobs.calls["first"], jobs.calls["second"]) == (1, 2)
    assert first.attempts == 1
    assert worker.statistics["grouped outcomes stored again"] >= 1


def put_with_callbacks(queue, keys, callback_policy=None):
    queued = []
    for key in ["warm-up", *keys]:
        job = Job(jobs.group_member, key)
        job.add_callback(Job(jobs.group_callback), retry_policy_factory=callback_policy)
        queued.append(queue.put(job))
    commit(queue)
    return queued[1:]


def wait_for_callbacks(queued):
    """Wait until the jobs, which complete with their callbacks, completed."""
    for job in queued:
        wait_for_result(job)


def test_a_job_and_its_callback_share_the_group_commit(db, queue, worker):
    # Without: a commit of the job's outcome (starting its callback, and
    # the next job), and one of the callback's outcome (completing the job).
    before = committed_transactions(db)
    queued = put_with_callbacks(queue, [f"job {n}" for n in range(20)])
    wait_for_callbacks(queued)
    assert all(jobs.calls[f"job {n}"] == 1 and jobs.calls[f"callback of job {n}"] == 1
               for n in range(20))
    assert all(job.attempts == 1 and job.callbacks[0].attempts == 1 for job in queued)
    # 29 when only the callbacks' outcomes joined groups, 41 or more with none.
    assert committed_transactions(db) - before < 18
    assert worker.statistics["outcomes grouped"] >= 30


def test_a_callback_failing_in_the_group_of_its_job_fails_alone(queue, worker):
    """The failure aborts the transaction holding the job's outcome and the
    callback's start: both are stored again, and the callback's retry
    policy decides, as if they had been committed before it ran."""
    keys = ["job 0", "break 1", "job 2"]
    queued = put_with_callbacks(queue, keys)
    wait_for_callbacks(queued)
    assert [job.result for job in queued] == keys
    assert all(jobs.calls[key] == 1 and jobs.calls[f"callback of {key}"] == 1
               for key in keys)
    broken = queued[1].callbacks[0]
    assert is_failure(broken.result)
    assert broken.result.getErrorMessage() == "callback of break 1 breaks"
    assert all(job.attempts == 1 and job.callbacks[0].attempts == 1 for job in queued)
    assert worker.statistics["grouped outcomes stored again"] >= 1


def test_callback_outcomes_lost_when_the_next_job_fails_are_stored_again(queue, worker):
    keys = ["job 0", "job 1", "fail 2", "job 3"]
    queued = put_with_callbacks(queue, keys)
    wait_for_callbacks(queued)
    assert all(jobs.calls[key] == 1 for key in keys)
    assert all(jobs.calls[f"callback of {key}"] == 1 for key in ["job 0", "job 1", "job 3"])
    assert jobs.calls["callback of fail 2 fails"] == 1
    assert all(job.callbacks[0].status == status.COMPLETED for job in queued)
    assert worker.statistics["grouped outcomes stored again"] >= 1


def test_callbacks_that_must_not_run_twice_commit_at_once(db, queue, worker):
    before = committed_transactions(db)
    queued = put_with_callbacks(queue, [f"job {n}" for n in range(10)], callback_policy="never")
    wait_for_callbacks(queued)
    assert all(jobs.calls[f"callback of job {n}"] == 1 for n in range(10))
    # The put, then two commits for each job at least.
    assert committed_transactions(db) - before >= 21
    assert worker.statistics["outcomes grouped"] == 0


def test_jobs_that_must_not_run_twice_commit_at_once(db, queue, worker):
    before = committed_transactions(db)
    queued = [queue.put(Job(jobs.group_member, f"job {n}"), retry_policy_factory="never")
              for n in range(10)]
    commit(queue)
    assert [wait_for_result(job) for job in queued] == [f"job {n}" for n in range(10)]
    # The put, then one commit for each outcome at least.
    assert committed_transactions(db) - before >= 11
    assert worker.statistics["outcomes grouped"] == 0


@pytest.fixture
def two_databases(tmp_path):
    """A main database and a database ``async`` for the queues."""
    databases = {}
    for name in ("main", "async"):
        ZODB.DB(FileStorage(str(tmp_path / f"{name}.fs")), databases=databases,
                database_name=name)
    yield databases
    for database in databases.values():
        database.close()


def test_outcomes_share_commits_when_the_queues_live_in_another_database(
        two_databases, short, start_dispatcher):
    worker = start_dispatcher(db=two_databases["main"], database_name="async", agent_size=1)
    manager = transaction.TransactionManager()
    connection = two_databases["main"].open(transaction_manager=manager)
    queue = configure.get_queue(connection)
    assert queue._p_jar.db() is two_databases["async"]
    queued = [queue.put(Job(jobs.group_member, f"job {n}")) for n in range(40)]
    manager.commit()
    before = committed_transactions(two_databases["async"])
    assert [wait_for_result(job) for job in queued] == [f"job {n}" for n in range(40)]
    assert committed_transactions(two_databases["async"]) - before < 20
    assert worker.statistics["outcomes grouped"] >= 30
    connection.close()


def test_the_threads_of_a_pool_claim_one_at_a_time_without_conflicts(queue, short, start_dispatcher):
    """The claims of one pool write the same objects (its held jobs, the
    front of its history): they take turns instead of conflicting."""
    worker = start_dispatcher(agent_size=3)
    queued = [queue.put(Job(jobs.group_member, f"job {n}")) for n in range(1500)]
    commit(queue)
    for job in queued:
        wait_for_result(job, seconds=60)
    assert all(jobs.calls[f"job {n}"] == 1 for n in range(1500))
    assert worker.statistics["claim conflicts"] == 0


def test_a_job_or_a_queue_can_turn_grouping_off(db, queue, worker):
    queued = [queue.put(Job(jobs.group_member, f"job {n}")) for n in range(10)]
    for job in queued:
        job.group_commit = False
    commit(queue)
    assert [wait_for_result(job) for job in queued] == [f"job {n}" for n in range(10)]
    assert worker.statistics["outcomes grouped"] == 0
    queue.group_commit = False
    queued = put_all(queue, *(member(f"again {n}") for n in range(10)))
    assert [wait_for_result(job) for job in queued[1:]] == [f"again {n}" for n in range(10)]
    assert worker.statistics["outcomes grouped"] == 0


def test_a_group_holds_at_most_max_outcomes(db, queue, worker, monkeypatch):
    monkeypatch.setattr(groupcommit, "MAX_OUTCOMES", 2)
    before = committed_transactions(db)
    queued = put_all(queue, *(member(f"job {n}") for n in range(30)))
    assert [wait_for_result(job) for job in queued[1:]] == [f"job {n}" for n in range(30)]
    # The put, then, as at most two outcomes wait, a commit every third job
    # at least.
    assert committed_transactions(db) - before >= 11
    assert worker.statistics["outcomes grouped"] >= 10


def test_unexpected_transaction_internals_mean_no_grouping_not_a_failure(
        queue, worker, monkeypatch):
    def surprise(*args):
        raise AttributeError("_resources")

    monkeypatch.setattr(groupcommit.GroupCommit, "_changes_only_jobs", surprise)
    queued = put_all(queue, *(member(f"job {n}") for n in range(10)))
    assert [wait_for_result(job) for job in queued[1:]] == [f"job {n}" for n in range(10)]
    assert worker.statistics["outcomes grouped"] == 0


def test_the_private_internals_group_commit_reads_are_still_there(conn):
    """Group commit reads private attributes of transaction and ZODB (see
    plone.app.asyncjobs.engine.groupcommit): an upgrade that changes them
    must fail here, not silently stop grouping in production."""
    current = conn.transaction_manager.get()
    conn.root()["changed"] = 1
    assert isinstance(current._resources, list) and conn in current._resources
    assert isinstance(conn._added, dict)
    assert isinstance(conn._registered_objects, list)
    assert conn.root() in conn._registered_objects
    assert list(current.getAfterCommitHooks()) == []
    conn.transaction_manager.abort()
