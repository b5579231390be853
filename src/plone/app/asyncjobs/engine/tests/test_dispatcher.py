"""The dispatcher: activation, polling, worker threads, shutdown, monitoring.

Most tests run a real dispatcher on a private reactor thread over a
FileStorage; the ``fake`` fixture drives one with the deterministic
``FakeReactor`` (and the testing clock) to control when polls happen.
"""
import logging
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime
from datetime import timedelta
from datetime import timezone

import pytest
import transaction

from plone.app.asyncjobs.engine import configure
from plone.app.asyncjobs.engine import dispatcher as dispatcher_module
from plone.app.asyncjobs.engine import status
from plone.app.asyncjobs.engine import workers
from plone.app.asyncjobs.engine.agent import Agent
from plone.app.asyncjobs.engine.dispatcher import RUNNING
from plone.app.asyncjobs.engine.dispatcher import STARTING
from plone.app.asyncjobs.engine.dispatcher import STOPPED
from plone.app.asyncjobs.engine.dispatcher import STUCK
from plone.app.asyncjobs.engine.dispatcher import Dispatcher
from plone.app.asyncjobs.engine.exceptions import DispatcherError
from plone.app.asyncjobs.engine.ids import object_id as job_id
from plone.app.asyncjobs.engine.instanceuuid import get_uuid
from plone.app.asyncjobs.engine.job import Job
from plone.app.asyncjobs.engine.testing.reactor import FakeReactor
from plone.app.asyncjobs.engine.testing.waiting import wait_for_poll
from plone.app.asyncjobs.engine.testing.waiting import wait_for_result
from plone.app.asyncjobs.engine.testing.waiting import wait_for_start
from plone.app.asyncjobs.engine.testing.waiting import wait_until
from plone.app.asyncjobs.engine.tests import jobs
from plone.app.asyncjobs.engine.tests.support import commit
from plone.app.asyncjobs.engine.tests.support import sync


def put(queue, job, **options):
    job = queue.put(job, **options)
    commit(queue)
    return job


def worker_threads(queue_name="", agent_name="main"):
    name = f"asyncjobs worker {queue_name!r}/{agent_name}"
    return [thread for thread in threading.enumerate() if thread.name == name]


def wait_for_threads(count, queue_name="", agent_name="main"):
    wait_until(lambda: len(worker_threads(queue_name, agent_name)) == count,
               describe=lambda: f"for {count} worker threads, "
                                f"found {len(worker_threads(queue_name, agent_name))}")


def dead_pid():
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


@pytest.fixture
def fake(db, queues):
    """A dispatcher on a FakeReactor that has not started yet."""
    made = []

    def make(**options):
        options.setdefault("poll_interval", 5)
        options.setdefault("uuid", uuid.uuid4())
        options.setdefault("shutdown_grace", 5)
        fake_dispatcher = Dispatcher(db, FakeReactor(), **options)
        made.append(fake_dispatcher)
        return fake_dispatcher

    yield make
    jobs.release_all()
    for fake_dispatcher in made:
        fake_dispatcher.deactivate()  # this thread plays the reactor thread


# -- activation ---------------------------------------------------------------------

def test_activation_registers_in_every_queue_and_installs_agent_main(
    dispatcher, conn, queues
):
    sync(conn.root())
    for queue in configure.get_queues(conn).values():
        record = queue.dispatchers[dispatcher.uuid]
        assert record.activated and not record.dead
        assert record.process == (socket.gethostname(), os.getpid())
        assert list(record) == ["main"]
        assert record["main"].size == 3
    assert dispatcher.uuid == get_uuid()
    assert dispatcher_module.get() is dispatcher
    assert dispatcher_module.get(dispatcher.uuid) is dispatcher
    wait_for_threads(3)
    wait_for_threads(3, queue_name="other")


def test_start_creates_the_queues_and_the_agent_settings(start_dispatcher, conn):
    started = start_dispatcher(queue_names=("", "mail"), agent_size=2,
                               agent_filter=jobs.only_echo)
    sync(conn.root())
    queues = configure.get_queues(conn)
    assert sorted(queues) == ["", "mail"]
    agent = queues["mail"].dispatchers[started.uuid]["main"]
    assert agent.size == 2 and agent.filter is jobs.only_echo
    assert started.reactor_thread.running


def test_a_second_dispatcher_with_the_same_uuid_is_refused(dispatcher, db):
    twin = Dispatcher(db, FakeReactor(), uuid=dispatcher.uuid)
    with pytest.raises(DispatcherError, match="another dispatcher with UUID .* runs here"):
        twin.activate()
    assert dispatcher_module.get(dispatcher.uuid) is dispatcher
    with pytest.raises(DispatcherError, match="is active already"):
        dispatcher.activate()


def test_poll_interval_must_be_positive(db):
    with pytest.raises(ValueError, match="poll_interval must be a positive"):
        Dispatcher(db, FakeReactor(), poll_interval=0)


def test_deactivation_ends_threads_and_hands_back_unstarted_jobs(
    queues, queue, start_dispatcher
):
    started = start_dispatcher()
    wait_for_threads(3)
    sync(queue)
    record = queue.dispatchers[started.uuid]
    # As if a worker had claimed it and not started it yet.
    job = queue.put(Job(jobs.echo, "unstarted"))
    assert record["main"].claim_job() is job
    commit(queue)
    assert configure.stop(started)
    assert started.status_info()["status"] == STOPPED
    assert dispatcher_module.get(started.uuid) is None
    assert worker_threads() == [] and worker_threads("other") == []
    sync(queue)
    assert record.activated is None
    assert job.status == status.PENDING and list(queue) == [job]
    assert len(record["main"]) == 0


def test_a_job_still_running_after_the_grace_is_handed_back_and_abandoned(
    queues, queue, start_dispatcher
):
    first = start_dispatcher(shutdown_grace=0.2)
    job = put(queue, Job(jobs.wait_for_event, "slow", "done"))
    wait_for_start(job)
    first.stop()  # returns after the grace; the job still runs
    sync(queue)
    assert job.status == status.PENDING and list(queue) == [job]
    assert job.get_retry_policy().data["interruptions"] == 1
    jobs.event("slow").set()
    # Abandoned (and interrupted) at the stop: its late commit was refused.
    wait_until(lambda: not worker_threads())
    assert first.job_info(*job_id(job))["result"] == f"attempt abandoned: {workers.STOPPED}"
    sync(queue)
    assert job.status == status.PENDING and job.result is None

    second = start_dispatcher(uuid=uuid.uuid4())
    assert wait_for_result(job) == "done"
    assert job.attempts == 2
    assert second.job_info(*job_id(job))["reassigned"] is False


def test_a_restarted_dispatcher_recovers_the_jobs_of_its_earlier_life(
    queues, queue, conn, start_dispatcher
):
    record = queue.dispatchers.register(get_uuid())
    record.activate(process=(socket.gethostname(), dead_pid()))
    record["main"] = Agent()
    assigned = put(queue, Job(jobs.echo, "assigned"))
    active = put(queue, Job(jobs.echo, "active"))
    assert {record["main"].claim_job(), record["main"].claim_job()} == {assigned, active}
    active.mark_active()
    commit(queue)
    assert not record.dead

    started = start_dispatcher()
    assert started.uuid == record.UUID
    assert wait_for_result(assigned) == "assigned"
    assert wait_for_result(active) == "active"
    assert active.get_retry_policy().data["interruptions"] == 1
    assert active.attempts == 2
    sync(record)
    assert record.process == (socket.gethostname(), os.getpid())


def test_a_record_active_in_another_live_process_waits_until_it_is_dead(
    queues, queue, conn, start_dispatcher
):
    record = queue.dispatchers.register(get_uuid())
    record.activate(process=(socket.gethostname(), os.getppid()))
    job = put(queue, Job(jobs.echo, "mine"))
    started = start_dispatcher()
    poll = wait_for_poll(started, 2)
    assert poll[""] is None  # not working in that queue
    assert poll["other"] is not None
    sync(queue)
    assert job.status == status.PENDING
    # Once that record counts as dead, the dispatcher takes over.
    long_ago = datetime.now(timezone.utc) - timedelta(minutes=5)
    record.activated = record.last_ping = long_ago
    commit(queue)
    assert wait_for_result(job) == "mine"


# -- polling and threads -------------------------------------------------------------

def test_changing_agent_size_in_the_database_resizes_the_threads(dispatcher, queue):
    wait_for_threads(3)
    agent = queue.dispatchers[dispatcher.uuid]["main"]
    for size in (1, 5, 0, 2):
        agent.size = size
        commit(queue)
        wait_for_threads(size)
        assert wait_for_poll(dispatcher)[""]["main"]["size"] == size
    job = put(queue, Job(jobs.add, 1, 1))
    assert wait_for_result(job) == 2


def test_an_agent_added_in_the_database_gets_threads(dispatcher, queue):
    record = queue.dispatchers[dispatcher.uuid]
    record["extra"] = Agent(size=1, filter=jobs.only_echo)
    commit(queue)
    wait_for_threads(1, agent_name="extra")
    poll = wait_for_poll(dispatcher)
    assert set(poll[""]) == {"main", "extra"}
    del record["extra"]
    commit(queue)
    wait_for_threads(0, agent_name="extra")


def test_wake_polls_at_once(queues, queue, start_dispatcher):
    slow = start_dispatcher(poll_interval=30)
    assert len(slow.polls) == 1
    job = put(queue, Job(jobs.add, 2, 3))
    before = slow.polls[-1].key
    slow.wake()
    wait_until(lambda: slow.polls[-1].key > before, seconds=5)
    assert wait_for_result(job, seconds=5) == 5
    assert len(slow.polls) < 5


def test_monitoring_job_info_active_jobs_polls_and_statistics(dispatcher, queue):
    start = datetime.now(timezone.utc)
    quick = put(queue, Job(jobs.add, 1, 2))
    slow = put(queue, Job(jobs.timed, "slow", 0.3))
    failing = put(queue, Job(jobs.boom, "bad"))
    blocked = put(queue, Job(jobs.wait_for_event, "blocked", "b"))
    for job in (quick, slow, failing):
        wait_for_result(job)
    wait_for_start(blocked)
    # A thread commits a job's result a moment before it forgets the job.
    wait_until(lambda: dispatcher.active_job_ids() == [job_id(blocked)])
    assert dispatcher.active_job_ids("", "main") == [job_id(blocked)]
    assert dispatcher.active_job_ids("other") == []

    info = dispatcher.job_info(*job_id(quick))
    assert info["call"] == repr(quick)
    assert (info["queue"], info["agent"]) == ("", "main")
    assert info["thread"] == "asyncjobs worker ''/main"
    assert info["result"] == "3" and info["failed"] is False
    assert info["started"] <= info["completed"]
    failed = dispatcher.job_info(job_id(failing)[0])
    assert failed["failed"] is True
    assert "ValueError" in failed["result"] and "bad" in failed["result"]
    with pytest.raises(LookupError, match="is not among this dispatcher's recent jobs"):
        dispatcher.job_info(999999)

    stats = dispatcher.statistics_info()
    assert (stats["started"], stats["successful"], stats["failed"], stats["unknown"]) == (
        4, 2, 1, 1)
    shortest, longest = stats["shortest successful"], stats["longest successful"]
    assert longest[1] == job_id(slow) and shortest[1] == job_id(quick)
    assert shortest[0] < longest[0] and longest[0] >= timedelta(seconds=0.3)
    assert stats["shortest failed"][1] == stats["longest failed"][1] == job_id(failing)
    assert start <= stats["statistics start"] <= stats["statistics end"]
    assert dispatcher.statistics_info(queue="other")["started"] == 0
    assert dispatcher.statistics_info(since=datetime.now(timezone.utc))["started"] == 0

    wait_for_poll(dispatcher, 2)
    polls = list(dispatcher.iter_polls(count=2))
    assert len(polls) == 2 and polls[0].key > polls[1].key
    assert polls[0].utc_timestamp >= polls[1].utc_timestamp
    assert polls[0][""]["main"]["size"] == 3
    assert job_id(blocked) in polls[0][""]["main"]["active jobs"]
    recent = list(dispatcher.iter_polls(since=polls[1].utc_timestamp))
    assert recent[:2] == polls
    assert dispatcher.statistics["completed"] >= 2
    jobs.event("blocked").set()
    wait_for_result(blocked)
    wait_until(lambda: not dispatcher.active_job_ids())


def test_status_info_of_a_running_and_a_stopped_dispatcher(queues, start_dispatcher):
    started = start_dispatcher()
    info = started.status_info()
    assert info["status"] == RUNNING
    assert info["uuid"] == str(started.uuid)
    assert info["poll interval"] == timedelta(seconds=0.1)
    assert info["uptime"] > timedelta(0)
    assert info["time since last poll"] >= timedelta(0)
    assert repr(started) == f"<Dispatcher {started.uuid} RUNNING>"
    configure.stop(started)
    info = started.status_info()
    assert info["status"] == STOPPED and info["uptime"] is None


# -- deterministic polling with the FakeReactor -------------------------------------

def test_fake_reactor_polls_every_interval_and_status_follows(fake, clock):
    polled = fake()
    assert polled.status_info()["status"] == STOPPED
    polled.activate()
    assert polled.status_info()["status"] == STARTING
    assert len(polled.polls) == 0
    polled.reactor.start()
    assert len(polled.polls) == 1
    assert polled.status_info()["status"] == RUNNING
    polled.reactor.advance(4.9)
    assert len(polled.polls) == 1
    polled.reactor.advance(0.1)
    assert len(polled.polls) == 2
    clock.advance(seconds=10)
    assert polled.status_info()["status"] == RUNNING  # two intervals
    clock.advance(seconds=0.001)
    info = polled.status_info()
    assert info["status"] == STUCK
    assert info["time since last poll"] > timedelta(seconds=10)
    polled.reactor.advance(5)
    assert polled.status_info()["status"] == RUNNING
    assert len(polled.polls) == 3


def test_a_dispatcher_that_never_polls_is_stuck(fake, clock):
    polled = fake()
    polled.activate()
    clock.advance(seconds=10)
    assert polled.status_info()["status"] == STARTING
    clock.advance(seconds=1)
    assert polled.status_info()["status"] == STUCK


def test_fake_reactor_wake_polls_and_reschedules(fake, queue, clock):
    polled = fake()
    polled.activate()
    polled.reactor.start()
    polled.reactor.advance(3)
    polled.wake()
    assert len(polled.polls) == 1  # handed to the reactor, not run yet
    assert polled.reactor.run_pending() == 1
    assert len(polled.polls) == 2
    polled.reactor.advance(4.9)  # the next poll is 5 s after the wake
    assert len(polled.polls) == 2
    polled.reactor.advance(0.1)
    assert len(polled.polls) == 3


def test_the_polls_go_on_while_even_aborting_fails(fake, queue, clock, monkeypatch):
    """With the storage away an abort fails too; that once escaped from a
    poll into the reactor and no poll was ever scheduled again."""
    polled = fake()
    polled.activate()
    polled.reactor.start()
    manager = polled._connection.transaction_manager
    working_abort = manager.abort

    def failing_abort():
        working_abort()
        raise ConnectionError("the storage is away")

    monkeypatch.setattr(manager, "abort", failing_abort)
    polled.reactor.advance(5)
    polled.reactor.advance(5)
    monkeypatch.setattr(manager, "abort", working_abort)
    polled.reactor.advance(5)
    assert len(polled.polls) == 4


def test_fake_reactor_agent_size_changes_at_the_next_poll(fake, queue, clock):
    polled = fake()
    polled.activate()
    polled.reactor.start()
    assert len(worker_threads()) == 3
    sync(queue)
    agent = queue.dispatchers[polled.uuid]["main"]
    agent.size = 5
    commit(queue)
    assert len(worker_threads()) == 3  # nothing changes until the next poll
    polled.reactor.advance(5)
    assert len(worker_threads()) == 5
    agent.size = 1
    commit(queue)
    polled.reactor.advance(5)
    wait_for_threads(1)
    job = put(queue, Job(jobs.add, 20, 22))
    polled.wake()
    polled.reactor.run_pending()
    assert wait_for_result(job) == 42


def test_shutdown_right_after_a_poll_does_not_wait_for_idle_threads(fake, caplog):
    # Each poll wakes the idle threads to claim; a shutdown at that moment
    # must not leave any of them waiting a whole poll interval to exit.
    for _ in range(3):
        polled = fake(poll_interval=30, shutdown_grace=30)
        polled.activate()
        polled.reactor.start()
        polled.reactor.advance(30)
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="plone.app.asyncjobs.events"):
            polled.deactivate()
        assert time.monotonic() - started < 5
        assert worker_threads() == []
    assert "still running" not in caplog.text


def test_fake_reactor_shutdown_deactivates(fake, queue, clock):
    polled = fake()
    polled.activate()
    polled.reactor.start()
    polled.reactor.stop()
    assert polled.status_info()["status"] == STOPPED
    sync(queue)
    assert queue.dispatchers[polled.uuid].activated is None
    wait_for_threads(0)


def test_active_dispatchers_share_the_lanes_out(start_dispatcher, queues, queue, record):
    from plone.app.asyncjobs.engine.queue import LANES

    alone = start_dispatcher(uuid=uuid.UUID(int=5))
    assert sorted({alone.next_lane("") for _ in range(2 * LANES)}) == list(range(LANES))
    record(uuid.UUID(int=1))  # an active sibling that sorts first
    wait_for_poll(alone)
    wait_for_poll(alone)
    assert sorted({alone.next_lane("") for _ in range(2 * LANES)}) == list(range(1, LANES, 2))
    assert {alone.next_lane("no such queue") for _ in range(2 * LANES)} == set(range(LANES))


def test_stop_waits_for_threads_leaving_after_the_size_went_down(
        start_dispatcher, queue, monkeypatch):
    # stop() returned while a thread that left after a size change still
    # handed back and closed its connection: the database closed next
    # then failed (KeyError in Connection.close) and left files open.
    leaving = threading.Event()
    hand_back = workers.WorkerThread._hand_back

    def slow_hand_back(thread, batch, manager):
        if thread.pool._must_exit(thread) and not leaving.is_set():
            leaving.set()
            threading.Event().wait(3)  # a slow commit, say
        return hand_back(thread, batch, manager)

    monkeypatch.setattr(workers.WorkerThread, "_hand_back", slow_hand_back)
    dispatcher = start_dispatcher()
    sync(queue)
    queue.dispatchers[dispatcher.uuid]["main"].size = 1
    commit(queue)
    wait_until(leaving.is_set, describe=lambda: "for a thread to leave")
    assert configure.stop(dispatcher)
    assert worker_threads() == []


def test_worker_connections_have_their_threads_own_manager(dispatcher, db):
    # With the thread-local wrapper transaction.manager, closing one from
    # another thread (DB.close does) unregistered it from that thread's
    # manager instead: KeyError.
    managers = []
    db._connectionMap(lambda connection: connection.opened and managers.append(
        connection.transaction_manager))
    assert managers and not any(
        isinstance(manager, transaction.ThreadTransactionManager) for manager in managers)


def test_the_connection_pool_grows_by_the_threads_and_shrinks_back(
        start_dispatcher, queue, db):
    # It grew by one per agent (each runs three threads) and never shrank:
    # ZODB warned of too many open connections, and a process starting
    # dispatchers again and again kept ever more connections.
    before = db.getPoolSize()
    dispatcher = start_dispatcher()
    threads = 2 * 3  # the queues '' and 'other', one agent of 3 threads each
    assert db.getPoolSize() == before + threads
    sync(queue)
    queue.dispatchers[dispatcher.uuid]["main"].size = 1
    commit(queue)
    wait_until(lambda: db.getPoolSize() == before + threads - 2,
               describe=lambda: f"for the pool to shrink, at {db.getPoolSize()}")
    assert configure.stop(dispatcher)
    assert db.getPoolSize() == before
