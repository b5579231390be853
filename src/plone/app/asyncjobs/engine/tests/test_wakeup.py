"""Pickup: queued jobs start by push, scheduled ones by timer, lost rings by poll.

The dispatchers here poll once a minute, so a job that completes within
the tests' waits was started by push or by the due timer.  Over real ZEO
and PostgreSQL, see test_multiprocess.py.
"""
import threading
import types
import uuid
from datetime import timedelta

import psycopg2
import pytest
import transaction
import ZODB
from twisted.internet import threads
from ZODB.mvccadapter import MVCCAdapter
from ZODB.utils import p64
from ZODB.utils import u64

from plone.app.asyncjobs.engine import pickups
from plone.app.asyncjobs.engine import queue as queue_module
from plone.app.asyncjobs.engine import wakeup
from plone.app.asyncjobs.engine.clock import to_microseconds
from plone.app.asyncjobs.engine.clock import utcnow
from plone.app.asyncjobs.engine.dispatcher import IDLE_POLLS
from plone.app.asyncjobs.engine.ids import object_id
from plone.app.asyncjobs.engine.job import Job
from plone.app.asyncjobs.engine.queue import LANES
from plone.app.asyncjobs.engine.queue import Queue
from plone.app.asyncjobs.engine.testing.postgres import PostgreSQLDatabase
from plone.app.asyncjobs.engine.testing.waiting import wait_for_poll
from plone.app.asyncjobs.engine.testing.waiting import wait_for_result
from plone.app.asyncjobs.engine.testing.waiting import wait_until
from plone.app.asyncjobs.engine.testing.zeo import ZEOServer
from plone.app.asyncjobs.engine.tests import jobs
from plone.app.asyncjobs.engine.tests.support import commit
from plone.app.asyncjobs.engine.tests.support import sync
from plone.app.asyncjobs.engine.workers import AgentWorkers


RARELY = 60  # seconds between polls: longer than any wait of these tests


def pickup_of(dispatcher, job):
    return dispatcher.job_info(object_id(job)[0])["pickup"]


def rings(queue):
    return [doorbell() for doorbell in queue.doorbells]


def test_put_rings_the_doorbell_of_the_job_s_lane(queue):
    assert rings(queue) == [0] * (LANES + 1)
    first = queue.put(Job(jobs.add, 1, 2))
    second = queue.put(Job(jobs.add, 3, 4))
    commit(queue)
    expected = [0] * (LANES + 1)
    for job in (first, second):
        expected[job._queue_key[0]] += 1
    assert rings(queue) == expected


def test_a_job_queued_for_later_rings_the_schedule_doorbell_instead(queue):
    later = utcnow() + timedelta(hours=1)
    queue.put(Job(jobs.add, 1, 2), begin_after=later)
    requeued = Job(jobs.add, 3, 4)
    queue._p_jar.add(requeued)
    queue.requeue(requeued, later)
    due = queue.put(Job(jobs.add, 5, 6), begin_after=utcnow() - timedelta(seconds=1))
    commit(queue)
    assert queue.schedule_doorbell() == 2
    assert rings(queue) == [1 if lane == due._queue_key[0] else 0 for lane in range(LANES + 1)]


def test_a_job_handed_back_rings_the_last_doorbell(queue):
    queue.put_back(Job(jobs.add, 1, 2))
    commit(queue)
    assert rings(queue) == [0] * LANES + [1]


def test_a_dispatcher_gives_an_older_queue_its_doorbells(queue, start_dispatcher):
    del queue.doorbells, queue.schedule_doorbell  # as stored before they existed
    commit(queue)
    assert queue.doorbells is queue.schedule_doorbell is None
    job = queue.put(Job(jobs.add, 1, 1))
    commit(queue)
    start_dispatcher(poll_interval=RARELY)
    assert wait_for_result(job) == 2  # found by the first poll
    sync(queue)
    assert rings(queue) == [0] * (LANES + 1)
    assert queue.schedule_doorbell() == 0


def test_a_queue_with_lane_doorbells_only_rings_them_for_later_jobs_too(queue):
    del queue.schedule_doorbell  # as stored before it existed
    job = queue.put(Job(jobs.add, 1, 2), begin_after=utcnow() + timedelta(hours=1))
    commit(queue)
    assert rings(queue)[job._queue_key[0]] == 1


def test_a_queued_job_starts_by_push_without_waiting_for_a_poll(queue, start_dispatcher):
    dispatcher = start_dispatcher(poll_interval=RARELY)
    job = queue.put(Job(jobs.add, 2, 3))
    commit(queue)
    assert wait_for_result(job, seconds=30) == 5
    assert pickup_of(dispatcher, job) == pickups.PUSH
    assert dispatcher.status_info()["push"] == "invalidations"
    summary = dispatcher.status_info()["pickups"]
    assert summary["jobs"] == 1 and summary["by"] == {pickups.PUSH: 1}
    assert summary["latency"]["max"] >= timedelta(0)


def test_a_scheduled_job_starts_by_timer_when_due(queue, start_dispatcher):
    dispatcher = start_dispatcher(poll_interval=RARELY)
    job = queue.put(Job(jobs.add, 1, 1), begin_after=utcnow() + timedelta(seconds=0.5))
    commit(queue)
    assert wait_for_result(job, seconds=30) == 2
    assert pickup_of(dispatcher, job) == pickups.TIMER
    assert dispatcher.job_info(object_id(job)[0])["started"] >= job.begin_after


def wakes(dispatcher):
    return sum(pool._wakes_seen() for pool in dispatcher._pools.values())


def test_a_job_queued_for_later_wakes_no_thread_before_it_is_due(queue, start_dispatcher):
    dispatcher = start_dispatcher(poll_interval=RARELY)
    wait_until(lambda: all(pool.waiting for pool in dispatcher._pools.values()),
               describe=lambda: "for the threads to wait")
    woken = wakes(dispatcher)
    job = queue.put(Job(jobs.add, 1, 1), begin_after=utcnow() + timedelta(hours=1))
    commit(queue)
    # The ring is answered by setting the due timer, for this job...
    wait_until(lambda: dispatcher._due_timer is not None and dispatcher._due_timer.active(),
               describe=lambda: "for the due timer")
    assert dispatcher._due_timer.args == (queue.name, job._queue_key[0])
    # ...and by nothing else: a thread woken now could claim nothing.
    assert wakes(dispatcher) == woken
    assert dispatcher.statistics["rings"] >= 1


def test_a_job_due_when_its_schedule_ring_is_answered_starts_at_once(
        queue, start_dispatcher, monkeypatch):
    dispatcher = start_dispatcher(poll_interval=RARELY)
    # The producer's clock is behind the worker's: the job it queues for
    # later is due by the time the dispatcher answers the ring (as a job
    # due in a few milliseconds is).
    producer = threading.current_thread()
    lag = timedelta(minutes=1)
    monkeypatch.setattr(queue_module, "now_microseconds", lambda: to_microseconds(utcnow() - (
        lag if threading.current_thread() is producer else timedelta(0))))
    job = queue.put(Job(jobs.add, 2, 2), begin_after=utcnow())
    commit(queue)
    assert queue.schedule_doorbell() == 1
    assert wait_for_result(job, seconds=30) == 4
    assert pickup_of(dispatcher, job) == pickups.TIMER


def record_prefetches(monkeypatch, db):
    """Record the oids the connections of ``db`` ask to prefetch."""
    asked = []
    monkeypatch.setattr(db.storage, "prefetch", lambda oids, tid: asked.extend(oids),
                        raising=False)
    return asked


def test_prefetch_head_loads_what_claiming_the_first_job_of_a_lane_changes(
        queue, db, monkeypatch):
    later = utcnow() + timedelta(hours=1)
    first = queue.put(Job(jobs.add, 1, 1), begin_after=later)
    queue.put(Job(jobs.add, 1, 2), begin_after=later + timedelta(seconds=1))
    commit(queue)
    asked = record_prefetches(monkeypatch, db)
    queue.prefetch_head(first._queue_key[0])
    assert asked == [first._p_oid, queue._length._p_oid]


def test_a_dispatcher_setting_its_timer_prefetches_the_job_due(
        queue, db, start_dispatcher, monkeypatch):
    asked = record_prefetches(monkeypatch, db)
    start_dispatcher(poll_interval=RARELY)
    job = queue.put(Job(jobs.add, 1, 1), begin_after=utcnow() + timedelta(hours=1))
    commit(queue)
    wait_until(lambda: job._p_oid in asked, describe=lambda: "for the job's prefetch")


def test_a_claim_prefetches_together_what_others_changed(queue, db, monkeypatch):
    job = queue.put(Job(jobs.add, 1, 1))
    commit(queue)
    lane = job._queue_key[0]
    tree = queue._lanes[lane]
    for changed in (tree, queue._length):
        changed._p_deactivate()
    asked = record_prefetches(monkeypatch, db)
    assert queue.claim(lane=lane) is job
    # One request for both, rather than a round trip each as the claim
    # comes to them.
    assert sorted(asked) == sorted([tree._p_oid, queue._length._p_oid])


def test_a_batch_claim_prefetches_the_jobs_it_chooses_among(
        queue, db, record, monkeypatch):
    agent = record(uuid.UUID(int=7))["main"]
    for number in range(12):
        queue.put(Job(jobs.add, 1, number))
    commit(queue)
    lane = max(range(LANES), key=lambda number: len(queue._lanes[number]))
    pending = [job for _, job in queue._lanes[lane].jobs()]
    assert len(pending) >= 6
    for job in pending:
        job._p_deactivate()
    asked = record_prefetches(monkeypatch, db)
    # Two jobs are taken at random among the first four, then among the
    # next four: the first five due jobs, in one request.
    queue.prefetch_claimable(2, lane)
    assert asked == [job._p_oid for job in pending[:5]]
    for job in pending:
        job._p_deactivate()
    asked.clear()
    assert len(agent.claim_jobs(3, lane=lane)) == 3
    assert asked == [job._p_oid for job in pending[:6]]


def test_a_push_claim_starts_in_the_lane_that_rang(queue, start_dispatcher, monkeypatch):
    dispatcher = start_dispatcher(poll_interval=RARELY, agent_size=1)
    wait_until(lambda: all(pool.waiting for pool in dispatcher._pools.values()),
               describe=lambda: "for the threads to wait")
    started = []
    claim = Queue.claim

    def recording_claim(self, *args, lane=None, **options):
        started.append(lane)
        return claim(self, *args, lane=lane, **options)

    monkeypatch.setattr(Queue, "claim", recording_claim)
    job = queue.put(Job(jobs.add, 1, 1))
    lane = job._queue_key[0]
    # The dispatcher's own turn would start in another lane.
    monkeypatch.setattr(dispatcher, "next_lane", lambda queue_name: (lane + 1) % LANES)
    commit(queue)
    wait_for_result(job, seconds=30)
    assert pickup_of(dispatcher, job) == pickups.PUSH
    assert started[0] == lane


def test_one_queued_job_does_not_wake_every_idle_thread(queue, start_dispatcher):
    dispatcher = start_dispatcher(poll_interval=RARELY, agent_size=5)

    def all_wait():
        return all(pool.waiting == 5 for pool in dispatcher._pools.values())

    wait_until(all_wait, describe=lambda: "for the threads of both queues to wait")
    empty_before = dispatcher.statistics["empty claims"]
    job = queue.put(Job(jobs.add, 2, 2))
    commit(queue)
    wait_for_result(job, seconds=30)
    wait_until(all_wait, describe=lambda: "for the threads to wait again")
    # The woken thread finds nothing after its job; it took the only job
    # pending, so it woke no other.  Waking all five would make four more
    # empty claims.
    assert dispatcher.statistics["empty claims"] - empty_before <= 1


def test_rings_answered_together_share_one_later_look(queue, start_dispatcher, monkeypatch):
    dispatcher = start_dispatcher(poll_interval=RARELY)
    looks = []
    monkeypatch.setattr(dispatcher, "_look", looks.append)

    def answer_three_rings():
        scheduled = set()
        for _ in range(3):
            dispatcher._answer_ring()
            scheduled.add(dispatcher._next_look)
        return list(looks), scheduled

    # Not at once: the look would compete with the claims the rings woke.
    looked_at_once, scheduled = threads.blockingCallFromThread(
        dispatcher.reactor, answer_three_rings)
    assert looked_at_once == [] and len(scheduled) == 1
    wait_until(lambda: looks == [None], describe=lambda: f"for one look, not {looks}")


class Deaf:
    """A wake-up channel that never rings: the push channel is broken."""

    describes = "deaf"

    def listen(self, ring):
        return self

    def announce(self, connection, doorbell):
        pass

    def stop(self):
        pass


def test_the_poll_still_picks_jobs_up_when_the_push_channel_is_broken(
        queue, start_dispatcher, monkeypatch):
    monkeypatch.setattr(wakeup, "channel_for", lambda db: Deaf())
    dispatcher = start_dispatcher(poll_interval=0.2)
    job = queue.put(Job(jobs.add, 4, 4))
    commit(queue)
    assert wait_for_result(job, seconds=30) == 8
    assert pickup_of(dispatcher, job) == pickups.POLL


def idle_waits(monkeypatch):
    """Record the timeouts of the waits of idle worker threads."""
    waits = []
    wait = AgentWorkers._wait

    def recording_wait(self, thread, wakes_seen, timeout):
        waits.append(timeout)
        return wait(self, thread, wakes_seen, timeout)

    monkeypatch.setattr(AgentWorkers, "_wait", recording_wait)
    return waits


@pytest.mark.parametrize("push, polls", [(True, IDLE_POLLS), (False, 1)])
def test_idle_threads_claim_on_their_own_rarely_with_push(
        queue, start_dispatcher, monkeypatch, push, polls):
    waits = idle_waits(monkeypatch)
    dispatcher = start_dispatcher(poll_interval=RARELY, push=push)
    wait_until(lambda: waits, describe=lambda: "for an idle thread to wait")
    # With push, every due job wakes a thread: by a ring, the due timer or
    # (as without push) the poll.  A thread's own claim is a last resort.
    assert set(waits) == {polls * dispatcher.poll_interval}


def test_a_poll_finding_no_due_job_wakes_no_idle_thread(queue, start_dispatcher, monkeypatch):
    dispatcher = start_dispatcher(poll_interval=0.05)
    monkeypatch.setattr(dispatcher, "idle_wait", lambda: RARELY)
    wait_until(lambda: all(pool.waiting == 3 for pool in dispatcher._pools.values()),
               describe=lambda: "for the threads to wait")
    empty = dispatcher.statistics["empty claims"]
    wait_for_poll(dispatcher, count=5)
    assert dispatcher.statistics["empty claims"] == empty


def test_a_thread_shrunk_away_between_its_exit_check_and_its_wait_exits(
        queue, start_dispatcher, monkeypatch):
    dispatcher = start_dispatcher(poll_interval=RARELY, agent_size=1)
    pool = dispatcher._pools["", "main"]
    wait_until(lambda: pool.waiting == 1, describe=lambda: "for the thread to wait")
    (thread,) = pool.alive()
    checked, resized = threading.Event(), threading.Event()
    wakes_seen = AgentWorkers._wakes_seen

    def resize_after_the_exit_check(self):
        if threading.current_thread() is thread:
            checked.set()
            resized.wait(30)
        return wakes_seen(self)

    monkeypatch.setattr(AgentWorkers, "_wakes_seen", resize_after_the_exit_check)
    pool.wake()
    assert checked.wait(30)
    pool.set_size(0)
    resized.set()
    # Its wait would last six poll intervals (six minutes here).
    assert pool.join(30) == []


def test_without_push_the_dispatcher_does_not_listen(queue, start_dispatcher):
    dispatcher = start_dispatcher(poll_interval=0.2, push=False)
    assert dispatcher.status_info()["push"] is None
    job = queue.put(Job(jobs.add, 1, 0))
    commit(queue)
    assert wait_for_result(job, seconds=30) == 1
    assert pickup_of(dispatcher, job) == pickups.POLL


# -- what the channels rely on (an upgrade that changes it fails here) ---------------


def listen_to(db):
    channel = wakeup.channel_for(db)
    assert isinstance(channel, wakeup.InvalidationChannel)
    rings = []
    listener = channel.listen(rings.append)
    return rings, listener


def store_something(db):
    manager = transaction.TransactionManager()
    connection = db.open(transaction_manager=manager)
    connection.root()["queue"] = queue = Queue()
    manager.commit()
    queue.put(Job(jobs.add, 1, 1))
    manager.commit()
    connection.close()
    return {doorbell._p_oid for doorbell in queue.doorbells}


def test_the_mvcc_adapter_hands_this_process_s_commits_to_the_listener():
    db = ZODB.DB(None)
    try:
        assert isinstance(db._mvcc_storage, MVCCAdapter)
        rings, listener = listen_to(db)
        doorbells = store_something(db)
        assert any(doorbells.intersection(oids) for oids in rings)
        listener.stop()
        rings.clear()
        store_something(db)
        assert rings == []
    finally:
        db.close()


def test_the_mvcc_adapter_hands_other_zeo_clients_commits_to_the_listener(tmp_path):
    with ZEOServer(tmp_path / "zeo") as server:
        listening, producing = server.db(), server.db()
        try:
            rings, listener = listen_to(listening)
            doorbells = store_something(producing)
            wait_until(lambda: any(oids is not None and doorbells.intersection(oids)
                                   for oids in rings),
                       seconds=30, describe=lambda: f"for the ring, got {rings}")
            listener.stop()
        finally:
            producing.close()
            listening.close()


def test_a_ring_that_will_be_answered_here_warms_the_zeo_cache(tmp_path):
    with ZEOServer(tmp_path / "zeo") as server:
        listening, producing = server.db(), server.db()
        try:
            answered = []
            listener = wakeup.channel_for(listening).listen(
                lambda oids: answered.append(oids) or True)
            store_something(producing)
            last = producing.lastTransaction()
            # The last ring, the put's, comes before the client moves on.
            wait_until(lambda: listening.lastTransaction() == last,
                       seconds=30, describe=lambda: "for the put's ring")
            stored = answered[-1]
            after = p64(u64(last) + 1)
            cache = listening.storage._cache
            # Nothing else here loads them: the listener did.
            wait_until(lambda: all(cache.loadBefore(oid, after) for oid in stored),
                       seconds=30, describe=lambda: "for the stored objects in the cache")
            listener.stop()
        finally:
            producing.close()
            listening.close()


class PrefetchingStorage:
    def __init__(self):
        self.prefetched = []

    def prefetch(self, oids, tid):
        self.prefetched.append((list(oids), tid))


@pytest.mark.parametrize("answered_here, stored, warmed", [
    (True, 3, True),
    (False, 3, False),
    (True, wakeup.WARM_LIMIT + 1, False),
])
def test_the_invalidation_listener_warms_for_rings_answered_here_only(
        answered_here, stored, warmed):
    adapter = MVCCAdapter(PrefetchingStorage())
    listener = wakeup.channel_for(types.SimpleNamespace(_mvcc_storage=adapter)).listen(
        lambda oids: answered_here)
    oids = [p64(n) for n in range(stored)]
    adapter.invalidate(p64(41), oids)
    listener.stop()
    assert adapter._storage.prefetched == ([(oids, p64(42))] if warmed else [])


def test_a_dispatcher_s_ring_tells_whether_it_wakes_a_thread(queue, start_dispatcher):
    dispatcher = start_dispatcher(poll_interval=RARELY)
    lane_doorbell = queue.doorbells[0]._p_oid
    assert dispatcher._ring([lane_doorbell])
    assert not dispatcher._ring([queue.schedule_doorbell._p_oid])
    assert not dispatcher._ring([p64(10**9)])


def test_storages_without_invalidations_have_no_channel():
    class Unknown:
        pass

    assert wakeup.channel_for(Unknown()) is None


@pytest.mark.parametrize("serial", [None, b"\0" * 8])
def test_a_job_never_committed_has_no_pending_time(serial):
    assert pickups.committed_at(serial) is None


def test_percentiles_by_nearest_rank():
    assert pickups.percentiles([]) is None
    summary = pickups.percentiles(range(1, 101))
    assert summary == {"p50": 50, "p90": 90, "p99": 99, "max": 100}
    assert pickups.percentiles([7]) == {"p50": 7, "p90": 7, "p99": 7, "max": 7}



@pytest.fixture
def notifications():
    """A PostgreSQL channel on a new database and the oids its listener
    received so far; the listener is stopped after the test."""
    if not PostgreSQLDatabase.available():
        pytest.skip("PostgreSQL refuses connections on 127.0.0.1:5432")
    with PostgreSQLDatabase() as database:
        channel = wakeup.PostgreSQLChannel(database.dsn)
        received = set()
        listener = channel.listen(lambda oids: oids and received.update(oids))
        wait_until(listener.listening.is_set, describe=lambda: "for the listener")
        yield database, channel, received
        listener.stop()
        channel._close_sender()


def ring(channel, oids):
    channel._notify(True, [types.SimpleNamespace(_p_oid=oid) for oid in oids])


def test_a_ring_after_the_sender_s_connection_was_cut_is_delivered(notifications):
    # The first ring after a server restart or an idle timeout was lost:
    # its job waited for a poll.
    database, channel, received = notifications
    ring(channel, [p64(1)])
    wait_until(lambda: p64(1) in received, describe=lambda: "for the first ring")
    with psycopg2.connect(database.dsn) as admin, admin.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                       "WHERE application_name = %s", (wakeup.SENDER_NAME,))
        assert cursor.fetchall() == [(True,)]
    admin.close()
    ring(channel, [p64(2)])
    wait_until(lambda: p64(2) in received, describe=lambda: "for the ring after the cut")


def test_a_ring_of_more_doorbells_than_a_notification_holds_is_delivered(notifications):
    # PostgreSQL refuses payloads of 8,000 bytes or more: a transaction
    # ringing about 470 doorbells or more lost its whole ring.
    _, channel, received = notifications
    oids = {p64(number) for number in range(1, 1001)}
    ring(channel, oids)
    wait_until(lambda: received >= oids, describe=lambda: f"for {len(oids - received)} oids")


@pytest.mark.parametrize("db", ["FileStorage", "RelStorage"], indirect=True)
def test_a_job_in_a_queue_added_after_the_start_starts_by_push(queue, start_dispatcher, db):
    # No agent of the dispatcher was in the new queue until its next poll,
    # and the dispatcher did not watch for new queues: the first jobs
    # waited for that poll.
    dispatcher = start_dispatcher(poll_interval=RARELY)
    queue.parent["added"] = Queue()
    commit(queue)
    job = queue.parent["added"].put(Job(jobs.add, 2, 3))
    commit(queue)
    assert wait_for_result(job, seconds=30) == 5
    assert dispatcher.statistics["rings"] >= 1


def test_a_job_found_after_a_dispatcher_record_changed_counts_as_found_by_looking(
        queue, start_dispatcher):
    # Every poll's ping changes a record, which dispatchers watch: the jobs
    # the look that follows found were counted as picked up by push.
    dispatcher = start_dispatcher(poll_interval=RARELY)
    sync(queue)
    queue.doorbells = None  # as stored before doorbells: the put rings none
    job = queue.put(Job(jobs.add, 1, 1))
    queue.dispatchers.register(uuid.uuid4())
    commit(queue)
    assert wait_for_result(job, seconds=30) == 2
    assert pickup_of(dispatcher, job) == pickups.POLL
