"""Agents (size, filter, chooser, holding jobs) and their history of completed jobs."""
import uuid
from datetime import timedelta

import pytest
import transaction
from ZODB.POSException import ConflictError
from ZODB.POSException import StateLoadError

from plone.app.asyncjobs.engine import cancel
from plone.app.asyncjobs.engine import configure
from plone.app.asyncjobs.engine import failure
from plone.app.asyncjobs.engine import status
from plone.app.asyncjobs.engine.agent import Agent
from plone.app.asyncjobs.engine.exceptions import BadStatusError
from plone.app.asyncjobs.engine.history import CompletedJobs
from plone.app.asyncjobs.engine.ids import load
from plone.app.asyncjobs.engine.ids import object_id
from plone.app.asyncjobs.engine.job import Job
from plone.app.asyncjobs.engine.queue import CLAIM_WINDOW
from plone.app.asyncjobs.engine.tests import jobs
from plone.app.asyncjobs.engine.tests.support import commit
from plone.app.asyncjobs.engine.tests.support import sync


@pytest.fixture
def dispatcher_record(queue, record):
    return record(uuid.UUID(int=1), agents=())


def add_agent(dispatcher_record, name="main", **options):
    agent = dispatcher_record[name] = Agent(**options)
    commit(dispatcher_record)
    return agent


def fill(queue, count, callable_=jobs.echo):
    queued = [queue.put(Job(callable_, n)) for n in range(count)]
    commit(queue)
    return queued


def test_an_agent_runs_at_most_size_jobs(queue, dispatcher_record):
    agent = add_agent(dispatcher_record, size=2)
    assert agent.queue is queue
    queued = fill(queue, 4)
    first, second = agent.claim_job(), agent.claim_job()
    assert {first, second} <= set(queued)
    assert len(agent) == 2 and bool(agent) and set(agent) == {first, second}
    assert agent.holds(first) and first.agent is agent
    assert repr(agent) == "<Agent 'main' size 2, holding 2>"
    # Claimed jobs count against the size once they run.
    first.mark_active()
    second.mark_active()
    assert agent.claim_job() is None
    assert len(queue) == 2
    agent.size = 3
    assert agent.claim_job() is not None


def test_claim_jobs_takes_a_batch_in_claim_order(queue, dispatcher_record):
    agent = add_agent(dispatcher_record, size=1)
    queued = fill(queue, 5)
    batch = agent.claim_jobs(3)
    assert len(batch) == 3 and set(batch) <= set(queued)
    assert all(job.status == status.ASSIGNED for job in batch)
    assert len(agent) == 3 and len(queue) == 2
    batch[0].mark_active()
    assert agent.claim_jobs(3) == []  # size 1, and one runs
    assert agent.claim_jobs(0) == []


def test_an_agent_of_size_zero_claims_nothing(queue, dispatcher_record):
    agent = add_agent(dispatcher_record, size=0)
    fill(queue, 1)
    assert agent.claim_job() is None
    assert len(queue) == 1


@pytest.mark.parametrize("size", [-1, 1.5, True, "3", 101])
def test_an_agents_size_is_an_integer_from_0_to_100(size):
    # 10**9 was taken: as many worker threads and connections.
    with pytest.raises(ValueError, match="an agent's size must be an integer from 0 to 100"):
        Agent(size=size)


def test_an_agent_claims_nothing_while_its_dispatcher_is_inactive_or_dead(
    queue, dispatcher_record, clock
):
    agent = add_agent(dispatcher_record)
    fill(queue, 1)
    clock.advance(seconds=61)
    assert dispatcher_record.dead
    assert agent.claim_job() is None
    queue.dispatchers.ping(dispatcher_record.UUID)
    dispatcher_record.deactivate()
    assert agent.claim_job() is None
    dispatcher_record.activate()
    assert agent.claim_job() is not None


def test_a_filter_chooses_the_jobs_an_agent_takes(queue, dispatcher_record):
    picky = add_agent(dispatcher_record, "picky", filter=jobs.only_echo)
    echo = queue.put(Job(jobs.echo, 1))
    add = queue.put(Job(jobs.add, 1, 2))
    commit(queue)
    assert picky.accepts(echo) and not picky.accepts(add)
    assert picky.claim_job() is echo
    assert picky.claim_job() is None
    assert list(queue) == [add]
    anything = add_agent(dispatcher_record, "anything")
    assert anything.accepts(add)
    assert anything.claim_job() is add


def test_a_chooser_claims_from_the_queue_itself(queue, dispatcher_record, clock):
    agent = add_agent(dispatcher_record, chooser=jobs.choose_last)
    first = queue.put(Job(jobs.echo, 1))
    clock.advance(seconds=1)
    last = queue.put(Job(jobs.echo, 2))
    commit(queue)
    assert agent.claim_job() is last
    assert last.status == status.ASSIGNED
    assert agent.claim_job() is first
    assert agent.claim_job() is None


def test_a_chooser_and_a_filter_exclude_each_other():
    with pytest.raises(ValueError, match="a chooser or a filter, not both"):
        Agent(chooser=jobs.choose_last, filter=jobs.only_echo)


def test_take_all_releases_every_job_and_its_quota_slots(queue, dispatcher_record):
    agent = add_agent(dispatcher_record)
    queue.quotas.create("q", size=5)
    for n in range(2):
        queue.put(Job(jobs.echo, n), quota_names=("q",))
    commit(queue)
    held = {agent.claim_job(), agent.claim_job()}
    assert len(queue.quotas["q"]) == 2
    assert set(agent.take_all()) == held
    assert len(agent) == 0 and not agent
    assert len(queue.quotas["q"]) == 0
    commit(queue)  # the holder tree keeps its marker: never empty, never a conflict


def test_sweep_moves_completed_jobs_to_the_history(queue, dispatcher_record):
    agent = add_agent(dispatcher_record)
    job, other = fill(queue, 2)
    assert {agent.claim_job(), agent.claim_job()} == {job, other}
    commit(queue)
    job()
    assert job.status == status.COMPLETED
    assert len(agent) == 2  # completing writes only the job
    assert agent.sweep() == 1
    assert len(agent) == 1 and list(agent) == [other]
    assert list(agent.completed) == [job]
    assert job in agent.completed and agent.completed.first() is job
    assert agent.sweep() == 0


def ghosts(connection, jobs_):
    """The jobs of ``jobs_`` that ``connection`` has not loaded."""
    return {job for job in jobs_ if connection.get(job._p_oid)._p_changed is None}


def test_a_claim_told_how_many_jobs_run_loads_no_held_job(queue, dispatcher_record, connect):
    add_agent(dispatcher_record, size=3)
    fill(queue, 5)
    held = dispatcher_record["main"].claim_jobs(4)
    commit(queue)
    connection = connect()
    agent = connection.get(dispatcher_record._p_oid)["main"]
    assert agent.claim_jobs(1, running=3) == []
    assert ghosts(connection, held) == set(held)
    assert len(agent.claim_jobs(1, running=2)) == 1
    assert ghosts(connection, held) == set(held)  # counted, they would be loaded


def test_sweep_leaves_the_jobs_to_skip_unloaded(queue, dispatcher_record, connect):
    agent = add_agent(dispatcher_record)
    job, other = fill(queue, 2)
    agent.claim_jobs(2)
    commit(queue)
    job()
    commit(job)
    connection = connect()
    agent = connection.get(dispatcher_record._p_oid)["main"]
    assert agent.sweep(skip={object_id(job)}) == 0
    assert ghosts(connection, [job]) == {job}
    assert agent.sweep() == 1


def test_a_claim_takes_a_job_of_its_window_loading_only_that_one(queue, connect):
    queued = [queue.put(Job(jobs.echo, n)) for n in range(8)]  # one lane: a run
    commit(queue)
    connection = connect()
    claimed = configure.get_queue(connection).claim()
    assert claimed._p_oid in {job._p_oid for job in queued[:CLAIM_WINDOW]}
    assert len(ghosts(connection, queued)) == len(queued) - 1


def test_a_claim_sweeps_the_job_the_claimer_finished(queue, dispatcher_record):
    agent = add_agent(dispatcher_record)
    job = fill(queue, 1)[0]
    assert agent.claim_job() is job
    commit(queue)
    job()
    assert agent.claim_job(finished=[job]) is None
    assert len(agent) == 0 and job in agent.completed


def test_moving_a_job_to_the_history_does_not_write_the_job(queue, dispatcher_record):
    # Its key in the history comes from its end: the claim that sweeps it
    # writes the history, not the job again.
    agent = add_agent(dispatcher_record)
    job = fill(queue, 1)[0]
    agent.claim_job()
    commit(queue)
    job()
    commit(job)
    assert agent.sweep() == 1
    assert not job._p_changed and job in agent.completed
    agent.completed.remove(job)
    assert not job._p_changed and job not in agent.completed


# -- the history itself ----------------------------------------------------------

def completed_job(conn, name):
    job = Job(jobs.echo, name)
    conn.add(job)
    return job


def test_history_is_newest_first_and_answers_since(conn, clock):
    history = CompletedJobs()
    assert not history and len(history) == 0 and history.first() is None
    start = clock.now
    added = []
    for hour in range(4):
        job = completed_job(conn, hour)
        history.add(job)
        added.append(job)
        clock.advance(hours=1)
    assert list(history) == added[::-1]
    assert len(history) == 4 and bool(history)
    assert history.first() is added[-1]
    assert list(history.since(start + timedelta(hours=2))) == [added[3], added[2]]
    assert list(history.since(start)) == added[::-1]
    assert list(history.since(clock.now)) == []
    assert completed_job(conn, "never added") not in history


def test_history_takes_the_completion_time_when_given(conn, clock):
    history = CompletedJobs()
    earlier, later = completed_job(conn, "earlier"), completed_job(conn, "later")
    history.add(later)
    history.add(earlier, clock.now - timedelta(minutes=5))
    assert list(history) == [later, earlier]
    assert list(history.since(clock.now - timedelta(minutes=1))) == [later]
    assert earlier in history and later in history
    history.remove(earlier)
    assert earlier not in history and list(history) == [later]


def test_history_rotates_and_stays_bounded(conn, clock):
    history = CompletedJobs(period=timedelta(days=7), generations=7)
    by_day = []
    for day in range(10):
        job = completed_job(conn, day)
        history.add(job)
        by_day.append(job)
        clock.advance(days=1)
    # Each day starts a new generation; the seven newest are kept.
    assert list(history) == by_day[:2:-1]
    assert len(history) == 7
    assert by_day[0] not in history and by_day[3] in history


def test_history_forgets_jobs_older_than_the_period_after_a_quiet_time(conn, clock):
    history = CompletedJobs(period=timedelta(days=7), generations=7)
    old = [completed_job(conn, n) for n in range(3)]
    for job in old:
        history.add(job)
    clock.advance(days=8)
    new = completed_job(conn, "new")
    history.add(new)
    assert list(history) == [new]
    assert all(job not in history for job in old)


def test_history_keeps_what_is_younger_than_the_period_after_a_quiet_time(conn, clock):
    history = CompletedJobs(period=timedelta(days=7), generations=7)
    old = completed_job(conn, "old")
    history.add(old)
    clock.advance(days=5)
    new = completed_job(conn, "new")
    history.add(new)
    assert list(history) == [new, old]


def test_history_needs_two_generations():
    with pytest.raises(ValueError, match="keep at least two generations"):
        CompletedJobs(generations=1)


def failed_job(conn, name):
    job = completed_job(conn, name)
    job._result = failure.capture(ValueError(name))
    return job


def test_history_indexes_and_counts_failed_jobs(conn, clock):
    history = CompletedJobs(period=timedelta(days=7), generations=7)
    ok, bad = completed_job(conn, "ok"), failed_job(conn, "bad")
    history.add(bad)
    clock.advance(days=1)
    history.add(ok)
    later_bad = failed_job(conn, "later bad")
    history.add(later_bad)
    assert [job for _, job in history.items("failed")] == [later_bad, bad]
    assert len(history) == 3 and history.failed_count() == 2
    clock.advance(days=7)
    history.add(completed_job(conn, "new"))
    assert history.failed_count() == 0 and len(history) == 1


def test_history_pages_after_a_key(conn, clock):
    history = CompletedJobs()
    added = []
    for n in range(5):
        added.append(completed_job(conn, n))
        history.add(added[-1])
        clock.advance(minutes=1)
    first_page = [item for item, _ in zip(history.items(), range(2))]
    assert [job for _, job in first_page] == [added[4], added[3]]
    rest = [job for _, job in history.items(after=first_page[-1][0])]
    assert rest == [added[2], added[1], added[0]]
    oldest_first = [job for _, job in history.items(reverse=True, after=first_page[-1][0])]
    assert oldest_first == [added[4]]
    assert [job for _, job in history.items(reverse=True)] == added
    assert list(history.items("succeeded")) == list(history.items())
    with pytest.raises(ValueError, match="outcome must be"):
        history.items("lost")


def test_history_removes_one_job_and_purges_old_ones(conn, clock):
    history = CompletedJobs()
    old, bad, new = completed_job(conn, "old"), failed_job(conn, "bad"), completed_job(conn, "new")
    history.add(old)
    history.add(bad)
    clock.advance(days=2)
    history.add(new)
    history.remove(bad)
    assert list(history) == [new, old] and history.failed_count() == 0
    with pytest.raises(LookupError, match="not in this history"):
        history.remove(bad)
    assert history.purge(clock.now - timedelta(days=1)) == 1
    assert list(history) == [new] and len(history) == 1 and old not in history
    assert history.purge(clock.now - timedelta(days=1)) == 0


def test_a_job_whose_record_cannot_be_loaded_is_purged_all_the_same(conn, connect, clock):
    # Purging loaded each job to clear its key, and failed on such a job:
    # nothing could be purged any more, in the whole history.
    from plone.app.asyncjobs.engine.testing.chaos import Unloadable

    conn.root()["history"] = history = CompletedJobs()
    broken, fine = completed_job(conn, "broken"), completed_job(conn, "fine")
    history.add(broken)
    history.add(fine)
    broken._result = Unloadable()  # as if a class of its state were gone
    conn.transaction_manager.commit()
    elsewhere = connect()
    with pytest.raises(StateLoadError):
        elsewhere.get(broken._p_oid)._p_activate()
    clock.advance(days=1)
    history = elsewhere.root()["history"]
    assert history.purge(clock.now) == 2 and len(history) == 0
    elsewhere.transaction_manager.commit()


def test_descending_walks_tuple_keys_backwards_between_bounds():
    from BTrees.OOBTree import OOBTree

    from plone.app.asyncjobs.engine.trees import descending

    tree = OOBTree({(n // 3, n % 3): n for n in range(12)})
    assert [value for _, value in descending(tree)] == list(range(11, -1, -1))
    assert [value for _, value in descending(tree, below=(2, 1))] == [6, 5, 4, 3, 2, 1, 0]
    assert [value for _, value in descending(tree, below=(2, 1), above=(1, 0))] == [6, 5, 4]
    assert list(descending(OOBTree())) == []
    assert list(descending(tree, below=(0, 0))) == []


def held_and_started(queue, dispatcher_record):
    """A job claimed and started by an agent, committed."""
    agent = add_agent(dispatcher_record)
    fill(queue, 1)
    job = agent.claim_job()
    job.mark_active()
    commit(queue)
    return agent, job


def test_a_job_its_agent_starts_gets_no_annotations_record(queue, dispatcher_record):
    # One record fewer per job: annotations are made only when written.
    agent, job = held_and_started(queue, dispatcher_record)
    assert job._annotations is None
    assert job.get_annotation("progress", "none") == "none"
    assert not job._p_changed and agent.annotations_of(job) is None


def test_annotations_written_while_a_job_is_held_never_touch_its_record(
        queue, dispatcher_record, connect):
    agent, job = held_and_started(queue, dispatcher_record)
    elsewhere = load(connect(), *object_id(job))
    elsewhere.annotations["progress"] = 0.5  # say, a live annotation
    commit(elsewhere)
    # The worker's next commit of the job's record, from the state it
    # started with (say, its outcome), does not conflict with it.
    job.active_end = job.active_start
    commit(job)
    assert job._annotations is None
    sync(job)
    assert job.get_annotation("progress") == 0.5
    assert job.annotations is agent.annotations_of(job)


def test_a_job_let_go_by_its_agent_keeps_the_annotations_written_while_held(
        queue, dispatcher_record):
    agent, job = held_and_started(queue, dispatcher_record)
    job.annotations["note"] = "kept"
    commit(job)
    agent.release(job)
    commit(queue)
    assert not agent.holds(job) and job.get_annotation("note") == "kept"
    assert job._annotations["note"] == "kept"


def test_a_first_annotation_and_the_release_of_the_job_cannot_both_commit(
        queue, dispatcher_record, connect):
    # Both change the job's entry in the agent: one of them conflicts and
    # is done again, so the annotation ends with the job, never lost.
    agent, job = held_and_started(queue, dispatcher_record)
    elsewhere = load(connect(), *object_id(job))
    elsewhere.annotations["cancel"] = "please"
    agent.release(job)
    commit(queue)
    with pytest.raises(ConflictError):
        commit(elsewhere)
    sync(elsewhere)
    elsewhere.annotations["cancel"] = "please"
    commit(elsewhere)
    sync(job)
    assert job.get_annotation("cancel") == "please"


def test_a_zeo_server_merges_changes_to_other_entries_of_an_agent_with_annotations(zeo):
    # The server resolves conflicts without the engine's classes, with
    # persistent references in place of objects: an entry holding
    # annotations must merge like one holding only its job.
    db = zeo.db()
    try:
        configure.install_queues(db)
        worker, elsewhere = (db.open(transaction_manager=transaction.TransactionManager())
                             for _ in range(2))
        queue = configure.get_queue(worker)
        dispatcher_record = queue.dispatchers.register(uuid.UUID(int=1))
        dispatcher_record.activate()
        commit(queue)
        agent = add_agent(dispatcher_record)
        fill(queue, 3)
        first, second = agent.claim_job(), agent.claim_job()
        first.mark_active()
        commit(queue)
        sync(elsewhere.root())
        load(elsewhere, *object_id(first)).annotations["progress"] = 1
        commit(elsewhere.root())
        sync(queue)
        # A claim and the release of the job with annotations, concurrently
        # with a new first annotation of another held job.
        third = agent.claim_job()
        agent.release(first)
        load(elsewhere, *object_id(second)).annotations["cancel"] = "please"
        commit(elsewhere.root())
        commit(queue)
        sync(queue)
        assert set(agent) == {second, third}
        assert first.get_annotation("progress") == 1 and first._annotations is not None
        assert second.get_annotation("cancel") == "please"
    finally:
        for connection in (worker, elsewhere):
            connection.transaction_manager.abort()
            connection.close()
        db.close()


def test_a_cancel_request_that_loses_to_the_release_is_refused_when_done_again(
        queue, dispatcher_record, connect):
    # A console's cancel of a job that completes and leaves its agent at
    # that moment: its commit conflicts, and done again (as Zope retries a
    # conflicting request) it finds the job no longer running.
    agent, job = held_and_started(queue, dispatcher_record)
    elsewhere = load(connect(), *object_id(job))
    cancel.request_cancel(elsewhere, "stop")
    job.run_claimed()
    agent.sweep([job])
    commit(queue)
    with pytest.raises(ConflictError):
        commit(elsewhere)
    sync(elsewhere)
    with pytest.raises(BadStatusError):
        cancel.request_cancel(elsewhere, "stop")
    assert job.status == status.COMPLETED and cancel.cancel_request(job) is None
