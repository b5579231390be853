"""Queues: transactional put, ordering, removal, claims and input checks."""
import gc
import threading
from datetime import datetime
from datetime import timedelta
from datetime import timezone

import pytest
import transaction
from BTrees.OOBTree import OOBucket
from ZODB.POSException import ConflictError

from plone.app.asyncjobs.engine import configure
from plone.app.asyncjobs.engine import status
from plone.app.asyncjobs.engine.exceptions import BadStatusError
from plone.app.asyncjobs.engine.instanceuuid import get_uuid
from plone.app.asyncjobs.engine.job import Job
from plone.app.asyncjobs.engine.queue import LANE_RUN
from plone.app.asyncjobs.engine.queue import LANES
from plone.app.asyncjobs.engine.queue import PendingJobs
from plone.app.asyncjobs.engine.queue import Queue
from plone.app.asyncjobs.engine.queue import Queues
from plone.app.asyncjobs.engine.testing.waiting import wait_for_result
from plone.app.asyncjobs.engine.tests import jobs
from plone.app.asyncjobs.engine.tests.support import claim_one_per_lane
from plone.app.asyncjobs.engine.tests.support import STORAGES
from plone.app.asyncjobs.engine.tests.support import commit
from plone.app.asyncjobs.engine.tests.support import sync


def nested_function():
    def inner():
        return 1
    return inner


def test_install_queues_is_idempotent_and_get_queue_finds_them(db, conn):
    configure.install_queues(db, ("", "other"))
    configure.install_queues(db, ("", "third"))
    sync(conn.root())
    queues = configure.get_queues(conn)
    assert sorted(queues) == ["", "other", "third"]
    assert configure.get_queue(conn, "other").name == "other"
    assert configure.get_queue(conn).parent is queues


def test_get_queues_explains_a_missing_installation(db, conn):
    with pytest.raises(LookupError, match="call configure.install_queues"):
        configure.get_queues(conn)


def test_put_belongs_to_the_current_transaction(queue, connect):
    other_queue = configure.get_queue(connect())
    job = queue.put(Job(jobs.add, 1, 2))
    assert len(queue) == 1 and list(queue) == [job]
    assert len(other_queue) == 0
    sync(other_queue)
    assert len(other_queue) == 0, "visible to another connection before the commit"
    commit(queue)
    sync(other_queue)
    assert len(other_queue) == 1
    assert other_queue[0]._p_oid == job._p_oid


def test_an_aborted_put_leaves_nothing(queue, connect):
    other_queue = configure.get_queue(connect())
    job = queue.put(Job(jobs.add, 1, 2))
    queue._p_jar.transaction_manager.abort()
    assert len(queue) == 0 and list(queue) == []
    assert job._p_jar is None
    commit(queue)
    sync(other_queue)
    assert len(other_queue) == 0


def test_put_wraps_a_callable_and_returns_the_job(queue):
    job = queue.put(jobs.echo)
    assert isinstance(job, Job)
    assert job.callable is jobs.echo
    assert job.status == status.PENDING
    assert job.begin_after is not None


def test_iteration_len_and_getitem_follow_due_order_handed_back_first(queue, clock):
    first = queue.put(Job(jobs.echo, "first"))
    clock.advance(seconds=1)
    second = queue.put(Job(jobs.echo, "second"))
    clock.advance(seconds=1)
    third = queue.put(Job(jobs.echo, "third"))
    later = queue.put(Job(jobs.echo, "later"), begin_after=clock.now + timedelta(hours=1))
    earlier = queue.put(Job(jobs.echo, "earlier"), begin_after=clock.now - timedelta(hours=1))
    back = Job(jobs.echo, "handed back")
    queue.put_back(back)
    commit(queue)
    expected = [back, earlier, first, second, third, later]
    assert list(queue) == expected
    assert len(queue) == 6 and bool(queue)
    assert [queue[i] for i in range(6)] == expected
    assert queue[-1] is later and queue[-6] is back
    with pytest.raises(IndexError):
        queue[6]
    with pytest.raises(IndexError):
        queue[-7]
    assert repr(queue) == "<Queue '' with 6 pending>"


def test_pull_and_remove(queue, clock):
    a = queue.put(Job(jobs.echo, "a"))
    clock.advance(seconds=1)
    b = queue.put(Job(jobs.echo, "b"))
    clock.advance(seconds=1)
    c = queue.put(Job(jobs.echo, "c"))
    clock.advance(seconds=1)
    d = queue.put(Job(jobs.echo, "d"))
    commit(queue)
    assert queue.pull() is a
    assert a.status == status.NEW and a.parent is None
    assert queue.pull(-1) is d
    queue.remove(b)
    assert list(queue) == [c] and len(queue) == 1
    with pytest.raises(LookupError, match="is not pending in queue ''"):
        queue.remove(b)
    commit(queue)
    # A pulled job can be queued again.
    queue.put(a)
    commit(queue)
    assert list(queue) == [c, a] or list(queue) == [a, c]
    assert len(queue) == 2


def test_a_pending_job_keeps_where_it_is_and_its_key_is_found_again(queue, clock):
    job = queue.put(Job(jobs.echo, "a"), begin_after=clock.now + timedelta(minutes=1))
    back = Job(jobs.echo, "back")
    queue.put_back(back)
    commit(queue)
    assert job.__getstate__()["_queue_key"] == (job._queue_key[0],)
    assert back._queue_key == (None,)
    with pytest.raises(BadStatusError, match="cannot change the due time"):
        job.set_due(clock.now)
    assert queue.claim() is back
    queue.remove(job)
    assert len(queue) == 0 and not list(queue)


def test_jobs_queued_by_an_earlier_version_keep_their_key(queue, clock):
    old = queue.put(Job(jobs.echo, "old"), begin_after=datetime(1960, 5, 1, tzinfo=timezone.utc))
    back = Job(jobs.echo, "back")
    queue.put_back(back)
    # As stored before: (where, key); the key of the old job as it was
    # before due times before 1970 counted as 1970, not what key_of says.
    (where,) = old._queue_key
    lane = queue._tree(where)
    key = (old.due_microseconds(), PendingJobs.key_of(old)[1])
    lane[key] = lane.pop(PendingJobs.key_of(old))
    old._queue_key = (where, key)
    back._queue_key = (None, PendingJobs.key_of(back))
    commit(queue)
    assert queue.claim() is back
    queue.remove(old)
    assert len(queue) == 0 and old._queue_key is None and list(lane) == [lane.MARKER_KEY]


def test_put_back_is_for_new_jobs_only(queue):
    job = queue.put(Job(jobs.echo, 1))
    with pytest.raises(ValueError, match="only a new job can be put back"):
        queue.put_back(job)


def test_a_job_put_twice_is_refused(queue):
    job = queue.put(Job(jobs.echo, 1))
    commit(queue)
    with pytest.raises(ValueError, match="only a new job can be queued"):
        queue.put(job)
    with pytest.raises(ValueError, match="only a new job can be queued"):
        configure.get_queue(queue._p_jar, "other").put(job)
    assert len(queue) == 1


def test_claim_takes_due_jobs_handed_back_first(queue, clock):
    due = queue.put(Job(jobs.echo, "due"))
    future = queue.put(Job(jobs.echo, "future"), begin_after=clock.now + timedelta(minutes=1))
    back = Job(jobs.echo, "back")
    queue.put_back(back)
    commit(queue)
    assert queue.claim() is back
    assert queue.claim() is due
    assert queue.claim() is None
    assert queue.claim(default="nothing") == "nothing"
    assert len(queue) == 1
    clock.advance(minutes=1)
    assert queue.claim() is future
    assert len(queue) == 0 and due.parent is None


def test_a_job_due_before_1970_is_claimed_at_once_and_keeps_its_due_time(queue):
    # Its key sorted before the lane's marker: pending for ever, unseen.
    long_ago = datetime(1960, 5, 1, tzinfo=timezone.utc)
    old = queue.put(Job(jobs.echo, "old"), begin_after=long_ago)
    commit(queue)
    assert [job for _, job in queue.items()] == [old]
    assert queue.has_due_jobs()
    assert queue.claim() is old
    assert old.begin_after == long_ago and len(queue) == 0


def test_claim_with_a_filter_skips_what_the_filter_refuses(queue):
    echo = queue.put(Job(jobs.echo, 1))
    add = queue.put(Job(jobs.add, 1, 2))
    commit(queue)
    assert queue.claim(filter=lambda job: job.callable is jobs.add) is add
    assert queue.claim(filter=jobs.never) is None
    assert queue.claim(filter=jobs.only_echo) is echo


def test_claim_returns_an_expired_job_whatever_the_filter(queue, clock):
    job = queue.put(Job(jobs.echo, 1), begin_by=timedelta(seconds=10))
    commit(queue)
    assert queue.claim(filter=jobs.never) is None
    clock.advance(seconds=11)
    assert queue.claim(filter=jobs.never) is job  # for the claimer to fail it


def test_claims_spread_over_lanes_keep_about_due_order(queue, clock):
    positions = claim_one_per_lane(queue, clock, lambda number: Job(jobs.echo, number))
    assert sorted(positions) == list(range(256))
    assert queue.claim() is None and len(queue) == 0
    # Not FIFO, but close: early claims take early jobs.
    assert sum(positions[:128]) < sum(positions[128:])
    assert positions != list(range(256))


@pytest.mark.parametrize("callable_, error, message", [
    (lambda: 1, ValueError, "<lambda> cannot be a job.*module-level function"),
    (nested_function(), ValueError, "<locals>.inner cannot be a job"),
    (42, TypeError, "a job needs a callable, not 42"),
])
def test_unusable_callables_are_refused_at_job_and_at_put(queue, callable_, error, message):
    with pytest.raises(error, match=message):
        Job(callable_)
    with pytest.raises(error, match=message):
        queue.put(callable_)
    assert len(queue) == 0


def test_an_unpicklable_argument_is_refused_at_put_naming_job_and_argument(queue, connect):
    with pytest.raises(ValueError) as raised:
        queue.put(Job(jobs.add, 1, threading.Lock()))
    message = str(raised.value)
    assert "cannot queue <plone.app.asyncjobs.engine.job.Job" in message
    assert "jobs.add(1, <unlocked _thread.lock" in message
    assert "its argument 1 (<unlocked _thread.lock" in message
    assert "cannot be stored in the database" in message
    with pytest.raises(ValueError, match="its keyword argument 'lock'"):
        queue.put(Job(jobs.echo, value=1, lock=threading.Lock()))
    assert len(queue) == 0
    commit(queue)
    other_queue = configure.get_queue(connect())
    assert len(other_queue) == 0


def test_what_cannot_be_stored_is_refused_even_where_a_job_keeps_plain_data(queue):
    # Plain-data arguments are not pickled to check them; anything else is.
    job = Job(jobs.echo, "plain")
    job.args.append(threading.Lock())
    with pytest.raises(ValueError, match="its argument 1"):
        queue.put(job)
    with pytest.raises(ValueError, match="its callable"):
        queue.put(Job(threading.Lock().acquire))
    assert len(queue) == 0


def test_an_argument_that_is_a_persistent_object_is_fine(queue, conn):
    counter = conn.root()["counter"] = jobs.Counter()
    job = queue.put(Job(jobs.increment, counter, 2))
    commit(queue)
    assert job.args[0] is counter


def test_put_needs_a_stored_queue():
    with pytest.raises(ValueError, match="not stored in a database"):
        Queue().put(Job(jobs.echo, 1))


def test_queues_container_rules(queue, queues):
    container = queue.parent
    assert isinstance(container, Queues)
    with pytest.raises(ValueError, match="is not a queue"):
        container["bad"] = object()
    with pytest.raises(ValueError, match="queue '' exists already"):
        container[""] = Queue()
    queue.put(Job(jobs.echo, 1))
    with pytest.raises(ValueError, match="has pending jobs"):
        del container[""]
    del container["other"]
    assert "other" not in container


def test_assigner_uuid_is_the_producers_uuid_when_configured(queue):
    job = queue.put(Job(jobs.echo, 1))
    assert job.assigner_uuid == get_uuid()  # ZC_ASYNC_UUID is set for every test


def test_queued_jobs_run_in_a_worker_after_commit(dispatcher, queue):
    job = queue.put(Job(jobs.add, 20, 22))
    queue._p_jar.transaction_manager.commit()
    assert wait_for_result(job) == 42
    assert len(queue) == 0


def test_the_default_transaction_manager_works_for_producers(db, queues, dispatcher):
    connection = db.open()  # bound to the thread's default transaction manager
    try:
        job = configure.get_queue(connection).put(Job(jobs.add, 1, 1))
        transaction.commit()
        assert wait_for_result(job) == 2
    finally:
        transaction.abort()
        connection.close()


def test_a_job_returned_not_first_goes_back_among_jobs_due_when_it_was(queue, record, clock):
    agent = record()["main"]
    earlier = queue.put(Job(jobs.echo, "earlier"))
    clock.advance(seconds=1)
    later = queue.put(Job(jobs.echo, "later"))
    commit(queue)
    claimed = agent.claim_jobs(2)
    assert set(claimed) == {earlier, later}
    due = earlier.begin_after
    clock.advance(minutes=5)
    earlier.return_to_queue(first=False)
    later.return_to_queue()
    commit(queue)
    # Not in the handed-back tree (lane None) that every claim reads first.
    assert earlier._queue_key[0] is not None and earlier.begin_after == due
    assert later._queue_key[0] is None
    assert list(queue) == [later, earlier]


class SmallLane(PendingJobs):
    max_leaf_size = 4
    max_internal_size = 4


def test_a_lane_that_grows_keeps_one_marker_and_loses_no_bucket():
    # BTrees make the inner nodes of a growing tree by calling its class:
    # a marker set by the constructor would be a bucket lost per split.
    def marker_buckets():
        gc.collect()
        return [obj for obj in gc.get_objects()
                if type(obj) is OOBucket and obj._p_jar is None and len(obj)
                and obj.minKey() == PendingJobs.MARKER_KEY]

    existing = marker_buckets()  # held, so that their ids stay theirs
    lane = SmallLane.new_lane()
    for number in range(200):
        lane[(number, number)] = number
    lane._check()
    assert list(lane)[:2] == [PendingJobs.MARKER_KEY, (0, 0)]
    assert [key for key, _ in lane.jobs()] == [(n, n) for n in range(200)]
    known = {id(bucket) for bucket in existing}
    assert [bucket for bucket in marker_buckets() if id(bucket) not in known] == [
        lane._firstbucket]


def lanes_of(jobs_):
    return [job._queue_key[0] for job in jobs_]


def test_the_jobs_of_one_transaction_go_to_lanes_in_runs(queue):
    # One bucket rewritten per run, not one per lane (see LANE_RUN).
    first = [queue.put(Job(jobs.echo, number)) for number in range(3 * LANE_RUN)]
    runs = [lanes_of(first[start:start + LANE_RUN])
            for start in range(0, len(first), LANE_RUN)]
    assert all(len(set(run)) == 1 for run in runs)
    commit(queue)
    # A new transaction starts a new run, in the next lane: the runs of a
    # process take the lanes in turn.
    lanes = []
    for number in range(LANES):
        lanes += lanes_of([queue.put(Job(jobs.echo, number))])
        commit(queue)
    assert sorted(lanes) == list(range(LANES))


def test_concurrent_transactions_of_one_process_put_in_different_lanes(queue, connect):
    # An append that splits a lane's bucket conflicts with every concurrent
    # write to that lane.
    queues = [configure.get_queue(connect()) for _ in range(LANES)]
    jobs_ = [other.put(Job(jobs.echo, number)) for number, other in enumerate(queues)]
    assert sorted(lanes_of(jobs_)) == list(range(LANES))


def test_put_many_queues_jobs_and_callables_with_common_options(queue, clock):
    later = clock.now + timedelta(hours=1)
    queued = queue.put_many([Job(jobs.echo, 1), jobs.boom], begin_after=later, priority=2)
    assert [job.status for job in queued] == [status.PENDING] * 2
    assert [job.begin_after for job in queued] == [later, later]
    assert [job.priority for job in queued] == [2, 2]
    assert queued[1].callable is jobs.boom and len(queue) == 2


def test_put_many_checks_everything_before_queuing_anything(queue):
    good = Job(jobs.echo, 1)
    with pytest.raises(ValueError, match="its argument 0"):
        queue.put_many([good, Job(jobs.echo, threading.Lock())])
    with pytest.raises(ValueError, match="only a new job"):
        queue.put_many([Job(jobs.echo, 2), queue.put(Job(jobs.echo, 3))])
    with pytest.raises(ValueError, match="unknown quota name"):
        queue.put_many([Job(jobs.echo, 4)], quota_names=("no such quota",))
    assert [job.args[0] for job in queue] == [3] and good.status == status.NEW


def test_put_many_gives_the_holder_of_a_unique_key_in_place_of_a_duplicate(queue):
    holder = queue.put(Job(jobs.echo, 0), unique_key="k0")
    first, second = Job(jobs.echo, 1), Job(jobs.echo, 2)
    first.unique_key = second.unique_key = "k1"
    duplicate = Job(jobs.echo, 3)
    duplicate.unique_key = "k0"
    assert queue.put_many([first, second, duplicate]) == [first, first, holder]
    assert len(queue) == 2


@pytest.mark.parametrize("db", STORAGES, indirect=True)
@pytest.mark.parametrize("first", ["put", "deletion"])
def test_a_queue_deleted_while_a_job_is_put_in_it_conflicts(queue, connect, first):
    # Both committed: the job was pending in a queue nothing looks at.
    producer = configure.get_queue(connect(), "other")
    admin = configure.get_queues(connect())
    assert len(producer) == len(admin["other"]) == 0
    producer.put(Job(jobs.echo, 1))
    del admin["other"]
    committing_first, committing_last = (
        (producer, admin) if first == "put" else (admin, producer))
    committing_first._p_jar.transaction_manager.commit()
    with pytest.raises(ConflictError):
        committing_last._p_jar.transaction_manager.commit()
    committing_last._p_jar.transaction_manager.abort()
    if first == "deletion":
        with pytest.raises(ValueError, match="queue 'other' was deleted"):
            producer.put(Job(jobs.echo, 1))
    else:
        sync(admin)
        assert len(admin["other"]) == 1
