"""Reliability under faults: no stranded jobs, every run an attempt, one run at a time."""
import threading
import uuid
from datetime import timedelta

import pytest
import transaction
from ZODB.POSException import ConflictError

from plone.app.asyncjobs.engine import local
from plone.app.asyncjobs.engine import retry
from plone.app.asyncjobs.engine import status
from plone.app.asyncjobs.engine import transactions
from plone.app.asyncjobs.engine import workers
from plone.app.asyncjobs.engine.agent import Agent
from plone.app.asyncjobs.engine.clock import utcnow
from plone.app.asyncjobs.engine.connectivity import Connectivity
from plone.app.asyncjobs.engine.connectivity import catch_up
from plone.app.asyncjobs.engine.counters import Counters
from plone.app.asyncjobs.engine.exceptions import OutcomeUnknownError
from plone.app.asyncjobs.engine.failure import capture
from plone.app.asyncjobs.engine.failure import is_failure
from plone.app.asyncjobs.engine.ids import object_id
from plone.app.asyncjobs.engine.job import Job
from plone.app.asyncjobs.engine.testing.waiting import wait_for_result
from plone.app.asyncjobs.engine.testing.waiting import wait_for_poll
from plone.app.asyncjobs.engine.testing.waiting import wait_for_start
from plone.app.asyncjobs.engine.testing.waiting import wait_until
from plone.app.asyncjobs.engine.tests import jobs
from plone.app.asyncjobs.engine.tests.support import commit
from plone.app.asyncjobs.engine.tests.support import sync


A = uuid.UUID(int=1)
B = uuid.UUID(int=2)


def put(queue, job, **options):
    job = queue.put(job, **options)
    commit(queue)
    return job


def test_a_callback_whose_commit_conflicts_is_retried_and_its_job_completes(
        dispatcher, queue, conn):
    # A callback is not held by an agent (its job is): a conflict on its
    # commit once made the worker take it for a reassignment and abandon
    # the job in CALLBACKS, with no worker on it.
    counter = conn.root()["counter"] = jobs.Counter()
    job = Job(jobs.echo, "parent")
    callback = job.add_callback(Job(jobs.conflicting_write, counter))
    put(queue, job)
    assert wait_for_result(job) == "parent"
    assert job.status == status.COMPLETED
    assert callback.status == status.COMPLETED and callback.result == 101
    assert callback.attempts == 2  # its rerun counts
    assert jobs.calls["parent"] == 2  # the key is the result it is given


# -- nothing kills a worker thread with jobs in hand --------------------------

def test_jobs_with_arguments_that_cannot_be_loaded_strand_nothing(dispatcher, queue, connect):
    # The arguments pickle but cannot be unpickled: the job fails, and
    # describing it (repr) for the logs and the monitor must not fail too.
    queued = []
    for number in range(40):
        arguments = (jobs.NeedsTwoArguments("a", "b"),) if number % 10 == 3 else ()
        queued.append(queue.put(Job(jobs.counted, f"job {number}", *arguments)))
    commit(queue)
    for number, job in enumerate(queued):
        result = wait_for_result(job)
        assert is_failure(result) == (number % 10 == 3)
    assert "arguments cannot be loaded" in repr(connect().get(queued[3]._p_oid))
    assert dispatcher.statistics["failed"] == 4


def test_a_thread_that_meets_an_unexpected_error_hands_back_and_goes_on(
        dispatcher, queue, monkeypatch):
    finished = dispatcher.job_finished
    failures_left = [1]

    def failing_once(info, job):
        finished(info, job)
        if failures_left.pop() if failures_left else 0:
            raise RuntimeError("the monitor failed")

    monkeypatch.setattr(dispatcher, "job_finished", failing_once)
    threads = set(pool_threads(dispatcher))
    queued = [queue.put(Job(jobs.echo, number)) for number in range(20)]
    commit(queue)
    assert [wait_for_result(job) for job in queued] == list(range(20))
    assert dispatcher.statistics["worker thread errors"] == 1
    assert set(pool_threads(dispatcher)) == threads  # none died


def pool_threads(dispatcher):
    return [thread for pool in dispatcher._pools.values() for thread in pool.alive()]


def test_a_held_job_no_thread_works_on_is_recovered_within_two_polls(
        dispatcher, queue, conn):
    # Held by the dispatcher's agent and ACTIVE, but no thread has it in
    # hand (as if its thread had lost it): the polls hand it to its policy.
    agent = queue.dispatchers[dispatcher.uuid]["main"]
    job = Job(jobs.echo, "recovered")
    conn.add(job)
    job.parent = agent
    agent._held[object_id(job)[0]] = job
    job.mark_active()
    commit(queue)
    assert wait_for_result(job) == "recovered"
    assert (job.attempts, job.interruptions) == (2, 1)
    assert dispatcher.statistics["stranded jobs recovered"] == 1


# -- one run at a time, per attempt -------------------------------------------

def _running_thread(dispatcher):
    """The worker thread running a job, if any."""
    return next((thread for pool in dispatcher._pools.values() for thread in pool.alive()
                 if thread.current_job is not None), None)


def test_an_attempt_started_again_elsewhere_never_commits_and_is_not_rerun(
        dispatcher, queue, caplog):
    # Another thread (of this same process, say, after it was wrongly
    # found dead) started the job again: this attempt's commit conflicts,
    # and it must not be retried as an ordinary conflict.  The job is
    # then held with nobody working on it, and the polls recover it.
    job = put(queue, Job(jobs.wait_for_event, "go", "stale"))
    wait_for_start(job)
    # Marked active by its claim; wait until its thread runs it, too.
    wait_until(lambda: _running_thread(dispatcher) is not None)
    job.holder = "another attempt"
    commit(queue)
    jobs.event("go").set()
    assert wait_for_result(job) == "stale"
    assert "was taken over by another worker; abandoning it" in caplog.text
    assert (job.attempts, job.interruptions) == (2, 1)


def test_a_job_taken_over_elsewhere_is_asked_to_stop(dispatcher, queue):
    job = put(queue, Job(jobs.run_until_stopped, "long"), retry_policy_factory="never")
    jobs.event("long running").wait(jobs.WAIT)
    agent = queue.dispatchers[dispatcher.uuid]["main"]
    sync(queue)
    agent.give_up(job)  # as a sibling does with the jobs of a dispatcher found dead
    commit(queue)
    wait_until(lambda: jobs.calls["long stopped"] == 1)
    assert wait_for_result(job).check(OutcomeUnknownError)  # its own outcome was refused
    assert jobs.calls["long"] == 1


@pytest.mark.parametrize("stored_before", [True, False])
def test_a_poll_that_began_before_a_claim_does_not_call_its_job_taken_over(
        dispatcher, queue, db, caplog, stored_before):
    # The poll reads the database as of its start: a job claimed and
    # started since is not held by the agent there (nor, if it was queued
    # since, stored).  That is no takeover.
    job = Job(jobs.wait_for_event, "claimed later", "done")
    if stored_before:
        queue._p_jar.add(job)
        commit(queue)
    manager = transaction.TransactionManager()
    poll_view = db.open(transaction_manager=manager)
    manager.begin()
    agent = poll_view.get(queue._p_oid).dispatchers[dispatcher.uuid]["main"]
    put(queue, job)
    wait_until(lambda: _running_thread(dispatcher) is not None)
    pool = dispatcher._pools["", "main"]
    try:
        assert pool.stop_superseded(agent) == 0
        assert _running_thread(dispatcher).taken_over is None
    finally:
        jobs.event("claimed later").set()
        manager.abort()
        poll_view.close()
    assert wait_for_result(job) == "done"
    assert "was taken over" not in caplog.text
    assert job.attempts == 1


def test_a_thread_whose_claims_keep_conflicting_sweeps_and_claims_again_soon(
        queue, start_dispatcher, monkeypatch):
    # As at the end of a drain, when every worker races for the last jobs:
    # the claims of one thread conflict CLAIM_ATTEMPTS times in a row.  Its
    # finished job must still reach the history, and the job left pending
    # must not wait for a poll (none comes during this test).
    dispatcher = start_dispatcher(poll_interval=60, agent_size=1)
    first = put(queue, Job(jobs.wait_for_event, "first", 1))
    wait_for_start(first)
    conflicts = []
    claim_jobs = Agent.claim_jobs

    def contended_claim_jobs(self, count, **options):
        if count and len(conflicts) < workers.CLAIM_ATTEMPTS:
            conflicts.append(count)
            raise ConflictError()
        return claim_jobs(self, count, **options)

    monkeypatch.setattr(Agent, "claim_jobs", contended_claim_jobs)
    second = put(queue, Job(jobs.add, 1, 1))
    jobs.event("first").set()
    assert wait_for_result(second, seconds=30) == 2
    assert len(conflicts) == workers.CLAIM_ATTEMPTS
    agent = queue.dispatchers[dispatcher.uuid]["main"]
    wait_until(lambda: first in list(agent.completed), sync=lambda: sync(queue))
    assert dispatcher.statistics["claims given way"] == 1


def test_a_job_stops_at_once_when_its_dispatchers_lease_lapsed(
        clock, queues, queue, start_dispatcher):
    # As in a worker paused longer than its death interval: at its first
    # question after waking the job stops, before anything is read from the
    # database (a sibling may be running it already), and the attempt
    # commits nothing.
    dispatcher = start_dispatcher(poll_interval=60, ping_interval=2, ping_death_interval=5)
    job = put(queue, Job(jobs.run_until_stopped, "lapsed"), retry_policy_factory="never")
    assert jobs.event("lapsed running").wait(jobs.WAIT)
    pool = dispatcher._pools["", "main"]
    running = _running_thread(dispatcher)
    clock.advance(seconds=6)
    wait_until(lambda: jobs.calls["lapsed stopped"] == 1)
    assert dispatcher.statistics["jobs stopped as their lease lapsed"] == 1
    wait_until(lambda: not running.is_alive())
    sync(queue)
    assert job.status == status.ACTIVE  # the abandoned attempt committed nothing
    wait_until(lambda: running not in pool.alive() and len(pool.alive()) == 3)  # replaced
    # No sibling took it over: the next polls hand it to its retry policy,
    # as any job no thread works on.
    outcome = wait_until(lambda: dispatcher.wake() or (sync(queue), job.result)[1])
    assert outcome.check(OutcomeUnknownError)
    assert jobs.calls["lapsed"] == 1 and job.attempts == 1


def test_every_rerun_in_the_same_worker_counts_as_an_attempt(dispatcher, queue):
    job = put(queue, Job(jobs.conflict_times, "twice", 2))
    assert wait_for_result(job) == "done"
    assert jobs.calls["twice"] == 3 and job.attempts == 3


# -- at-most-once jobs, interruptions ----------------------------------------

def test_only_jobs_that_may_run_again_are_started_before_they_run(queue):
    rerun = queue.put(Job(jobs.echo, 1))
    once = queue.put(Job(jobs.echo, 2), retry_policy_factory="never")
    suspect = queue.put(Job(jobs.echo, 3))
    suspect.interruptions = 1
    assert rerun.may_start_early()
    assert not once.may_start_early()
    assert not suspect.may_start_early()  # it runs alone


def test_only_a_job_its_claim_did_not_start_is_looked_up_again_before_it_runs(
        dispatcher, queue, monkeypatch):
    looked_up = []
    owns = workers.WorkerThread._owns

    def recording_owns(self, job):
        looked_up.append(object_id(job))
        return owns(self, job)

    monkeypatch.setattr(workers.WorkerThread, "_owns", recording_owns)
    rerun = put(queue, Job(jobs.echo, 1))
    assert wait_for_result(rerun) == 1
    once = put(queue, Job(jobs.echo, 2), retry_policy_factory="never")
    assert wait_for_result(once) == 2
    # The claim committed the first one's start; the second one's start
    # needs a commit of its own, after checking that it is still held here.
    assert object_id(rerun) not in looked_up and object_id(once) in looked_up


def test_the_commit_of_an_outcome_does_not_start_an_at_most_once_successor(queue, record):
    agent = record()["main"]
    once = queue.put(Job(jobs.echo, 2), retry_policy_factory="never")
    assert agent.claim_job() is once
    local.set_successor(once)
    try:
        local.start_successor()
    finally:
        local.set_successor(None)
    assert once.status == status.ASSIGNED and once.attempts == 0


def test_an_assigned_job_of_a_dead_worker_counts_a_possible_run(queue, record, clock):
    record(A)
    dead = record(B)
    job = queue.put(Job(jobs.echo, 1))
    assert dead["main"].claim_job() is job  # maybe started and run in a lost group
    commit(queue)
    clock.advance(seconds=61)
    queue.dispatchers.ping(A)
    commit(queue)
    assert job.status == status.PENDING
    assert (job.attempts, job.interruptions) == (1, 1)


# -- false deaths ------------------------------------------------------------

def test_a_sibling_is_found_dead_only_after_the_death_interval_connected(
        queue, record, clock):
    record(A)
    sibling = record(B)
    clock.advance(seconds=61)  # no pings: an outage, say
    reconnected = utcnow() - timedelta(seconds=5)
    assert queue.dispatchers.ping(A, connected_since=reconnected) is None
    assert sibling.activated
    clock.advance(seconds=56)
    assert queue.dispatchers.ping(A, connected_since=reconnected) == B
    assert not sibling.activated


def test_connectivity_restarts_the_watch_after_a_break_or_a_late_poll(clock):
    connectivity = Connectivity(late=timedelta(seconds=2))
    start = utcnow()
    assert connectivity.poll_starts(start) is None
    assert connectivity.poll_starts(start + timedelta(seconds=1)) is None
    connectivity.broken()
    assert connectivity.poll_starts(start + timedelta(seconds=2)) == start + timedelta(seconds=2)
    late = start + timedelta(seconds=10)  # the process was paused
    assert connectivity.poll_starts(late) == late
    assert connectivity.poll_starts(late + timedelta(seconds=1)) == late


class _ClientStorage:
    """Stands in for a ZEO client storage: counts its round trips."""

    def __init__(self, connected):
        self.connected = connected
        self.round_trips = 0

    def is_connected(self):
        return self.connected

    def ping(self):
        self.round_trips += 1


class _Database:
    def __init__(self, storage):
        self.storage = storage


def test_catching_up_makes_a_round_trip_only_to_a_connected_server():
    connected, away = _ClientStorage(True), _ClientStorage(False)
    catch_up(_Database(connected))
    catch_up(_Database(away))  # does not wait for the server to come back
    catch_up(_Database(object()))  # a storage that is always up to date
    assert (connected.round_trips, away.round_trips) == (1, 0)


def test_a_thread_asks_the_server_before_telling_whether_its_job_is_still_its_own(
        dispatcher, queue, monkeypatch):
    """A woken worker must not trust what its client knew before the pause."""
    job = put(queue, Job(jobs.run_until_stopped, "fenced"), retry_policy_factory="never")
    jobs.event("fenced running").wait(jobs.WAIT)
    thread = wait_until(lambda: _running_thread(dispatcher))
    steps = []
    monkeypatch.setattr(workers, "catch_up", lambda db: steps.append("catch up"))
    open_connection = dispatcher.db.open
    monkeypatch.setattr(dispatcher.db, "open",
                        lambda **kwargs: steps.append("read") or open_connection(**kwargs))
    assert thread._read(thread.current_job)[0]
    monkeypatch.undo()
    assert steps == ["catch up", "read"]
    sync(queue)
    queue.dispatchers[dispatcher.uuid]["main"].give_up(job)
    commit(queue)
    wait_until(lambda: jobs.calls["fenced stopped"] == 1)


def test_counters_count_exactly_from_many_threads():
    counters = Counters()

    def add():
        for _ in range(10_000):
            counters.add("n")

    threads = [threading.Thread(target=add) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert counters.snapshot() == {"n": 80_000}


# -- storage outages -----------------------------------------------------------

def test_a_lost_postgresql_connection_is_retried_like_a_lost_zeo_connection(monkeypatch):
    psycopg2 = pytest.importorskip("psycopg2")
    monkeypatch.setattr(retry.time, "sleep", lambda seconds: None)
    policy = retry.RetryCommonFourTimes(Job(jobs.echo, 1))
    lost = capture(psycopg2.OperationalError("server closed the connection unexpectedly"))
    assert policy.job_error(lost, {}) is True
    assert policy.commit_error(lost, {}) is True


def test_an_abort_that_fails_while_the_database_is_away_does_not_raise():
    class Unreachable(transaction.TransactionManager):
        def abort(self):
            raise OSError("connection refused")

    transactions.abort(Unreachable())


def test_jobs_whose_outcomes_wait_for_a_group_commit_are_not_taken_for_strays(
        queues, queue, start_dispatcher, monkeypatch):
    monkeypatch.setattr(workers, "SHORT_JOB", 5)  # every job counts as short
    dispatcher = start_dispatcher(poll_interval=0.05)
    # Jobs of 10 ms: a group waits for several polls.
    queued = [queue.put(Job(jobs.timed, "short", 0.01)) for number in range(300)]
    commit(queue)
    for job in queued:
        wait_for_result(job, seconds=60)
    assert dispatcher.statistics["outcomes grouped"] > 0
    assert dispatcher.statistics["stranded jobs recovered"] == 0
    assert all(job.attempts == 1 for job in queued)


def test_jobs_a_thread_hands_back_are_not_taken_for_strays_meanwhile(
        queues, queue, start_dispatcher, monkeypatch):
    # Every fifth job is long: the thread hands back the rest of its batch,
    # and two polls pass while it does (as under load, or with conflicts).
    # It does so under the lock of its pool's claims: a hand back writes the
    # agent's held jobs, as claims do, and alongside the claims of the
    # other threads it conflicted until it gave up.
    dispatcher = start_dispatcher(poll_interval=0.05)
    handing_back, slowed = transactions.retry_conflicts, []

    def slow_hand_back(work, manager, description, **options):
        if "handing back" in description:
            slowed.append(dispatcher._pools[("", "main")].claiming.locked())
            wait_for_poll(dispatcher, count=2)
        return handing_back(work, manager, description, **options)

    monkeypatch.setattr(workers, "retry_conflicts", slow_hand_back)
    queued = [queue.put(Job(jobs.timed, "mixed", 0.06 if number % 5 == 4 else 0.001))
              for number in range(60)]
    commit(queue)
    for job in queued:
        wait_for_result(job, seconds=60)
    assert slowed and all(slowed)
    assert dispatcher.statistics["stranded jobs recovered"] == 0
    assert all(job.attempts == 1 and not job.interruptions for job in queued)


def test_slow_callbacks_do_not_make_a_thread_hand_its_batch_back(
        queues, queue, start_dispatcher, monkeypatch):
    # Every job the Plone service queues has a callback: counting it made
    # such jobs look long, and threads handed their batches back over and
    # over.  A job's time runs up to the commit of its outcome.
    monkeypatch.setattr(workers, "SHORT_JOB", 0.5)  # whatever the disk's speed
    dispatcher = start_dispatcher(agent_size=1)
    sync(queue)
    queue.dispatchers[dispatcher.uuid]["main"].chooser = jobs.choose_first
    commit(queue)
    # The first job, alone in its claim, shows the thread that jobs are short.
    queued = [queue.put(Job(jobs.timed, "first", 0.001))]
    for number in range(4):
        job = Job(jobs.timed, f"job {number}", 0.001)
        job.add_callback(Job(jobs.slow_callback, 0.6))
        queued.append(queue.put(job))
    commit(queue)
    for job in queued:
        wait_for_result(job, seconds=60)
    # One claim for the first job, one batch for the others: none claimed twice.
    assert dispatcher.statistics["claims"] == len(queued)


def test_a_job_learns_it_was_taken_over_without_waiting_for_a_poll(
        queues, queue, start_dispatcher):
    # As in a worker paused longer than its death interval: at its first
    # question after waking, not at its next poll.
    dispatcher = start_dispatcher(poll_interval=60)
    job = put(queue, Job(jobs.run_until_stopped, "paused"), retry_policy_factory="never")
    assert jobs.event("paused running").wait(jobs.WAIT)
    sync(queue)
    queue.dispatchers[dispatcher.uuid]["main"].give_up(job)
    commit(queue)
    wait_until(lambda: jobs.calls["paused stopped"] == 1)
    assert wait_for_result(job).check(OutcomeUnknownError)
