"""Where jobs keep their arguments and annotations (engine/arguments.py)."""
import copy
import pickle
from datetime import datetime
from datetime import timezone
from datetime import tzinfo

from BTrees.OOBTree import OOBTree
from persistent.list import PersistentList
from persistent.mapping import PersistentMapping

from plone.app.asyncjobs.engine.arguments import INLINE_LIMIT
from plone.app.asyncjobs.engine.arguments import OwnedDict
from plone.app.asyncjobs.engine.arguments import OwnedList
from plone.app.asyncjobs.engine.arguments import is_plain
from plone.app.asyncjobs.engine.job import Job
from plone.app.asyncjobs.engine.tests import jobs
from plone.app.asyncjobs.engine.tests.support import commit


WHEN = datetime(2026, 12, 5, 10, 0, tzinfo=timezone.utc)


class Point:
    """An argument of an application's class."""

    def __init__(self, x, y):
        self.x, self.y = x, y


def stored_objects(conn):
    return len(conn.db().storage)


def test_a_job_with_plain_arguments_is_one_new_record(queue, conn):
    counter = conn.root()["counter"] = jobs.Counter()
    commit(conn.root())
    before = stored_objects(conn)
    job = queue.put(Job(jobs.echo, "a", 1, [2.5, (None, b"x")], counter, when=WHEN))
    commit(queue)
    assert stored_objects(conn) == before + 1
    assert type(job.args) is OwnedList and type(job.kwargs) is OwnedDict
    assert job._annotations is None


def test_a_job_without_arguments_leaves_them_out_of_its_record(queue, conn, connect):
    job = queue.put(Job(jobs.reset))
    commit(queue)
    assert "args" not in job.__getstate__() and "kwargs" not in job.__getstate__()
    loaded = connect().get(job._p_oid)
    assert type(loaded.args) is OwnedList and loaded.args._owner is loaded
    assert type(loaded.kwargs) is OwnedDict and loaded.kwargs._owner is loaded
    loaded.kwargs["late"] = 1
    commit(loaded)
    assert connect().get(job._p_oid).kwargs == {"late": 1}


def test_is_plain_accepts_what_owned_containers_take_at_any_size():
    assert is_plain(["x" * (INLINE_LIMIT * 2), (1, None), {"a": WHEN}, jobs.Counter()])
    assert not is_plain(Point(1, 2)) and not is_plain([1, {"a": Point(1, 2)}])


def test_changes_to_arguments_kept_in_the_job_are_stored(queue, conn, connect):
    job = queue.put(Job(jobs.echo, "a", flag=True))
    commit(queue)
    job.args.append("b")
    job.args[0] = "A"
    job.kwargs.update(more=1)
    del job.kwargs["flag"]
    commit(job)
    loaded = connect().get(job._p_oid)
    assert loaded.args == ["A", "b"] and loaded.kwargs == {"more": 1}
    assert type(loaded.args) is OwnedList and loaded.args._owner is loaded


def test_instances_of_other_classes_get_records_of_their_own(queue, conn, connect):
    # So that the job loads even when their class is gone one day.
    job = queue.put(Job(jobs.echo, "a", Point(1, 2)))
    commit(queue)
    assert isinstance(job.args, PersistentList) and isinstance(job.kwargs, PersistentMapping)
    assert connect().get(job._p_oid).args[1].y == 2


def test_large_arguments_get_records_of_their_own():
    # The job's record is written at every change of status; they are not.
    assert type(Job(jobs.echo, "x" * (INLINE_LIMIT - 100)).args) is OwnedList
    assert isinstance(Job(jobs.echo, "x" * (INLINE_LIMIT + 1)).args, PersistentList)
    assert isinstance(Job(jobs.echo, text="x" * (INLINE_LIMIT + 1)).kwargs, PersistentMapping)


def test_a_date_in_a_time_zone_class_of_a_library_gets_a_record_of_its_own():
    class Zone(tzinfo):  # any time zone class but datetime's own
        def utcoffset(self, when):
            return None

    assert isinstance(Job(jobs.echo, datetime(2026, 1, 1, tzinfo=Zone())).args, PersistentList)
    assert type(Job(jobs.echo, WHEN).args) is OwnedList


def test_owned_containers_copy_and_pickle_as_plain_ones():
    job = Job(jobs.echo, "a", key="value")
    assert type(copy.copy(job.args)) is list and type(copy.copy(job.kwargs)) is dict
    assert type(pickle.loads(pickle.dumps(job.args))) is list
    assert pickle.loads(pickle.dumps(job.kwargs)) == {"key": "value"}


def test_a_copy_owns_its_arguments(queue, conn):
    job = queue.put(Job(jobs.echo, "a"))
    commit(queue)
    new = job.copy()
    new.args.append("b")
    assert new.args._owner is new and job.args == ["a"]
    assert not job._p_changed


def test_a_job_started_without_an_agent_gets_annotations_and_reading_makes_none(queue, conn):
    # Annotations written while a job runs (live annotations, cancel
    # requests) must change the tree only, never the job's record: see
    # Job.annotations (and test_agent_history for jobs an agent holds).
    job = queue.put(Job(jobs.echo, "a"))
    commit(queue)
    assert job.get_annotation("missing", "default") == "default"
    assert job._annotations is None and not job._p_changed
    job.mark_active()
    assert isinstance(job._annotations, OOBTree)


def test_a_job_stored_with_eager_annotations_and_argument_records_loads(conn, connect):
    # As jobs of earlier versions were stored.
    job = Job(jobs.echo)
    job.args = PersistentList(["old"])
    job.kwargs = PersistentMapping()
    job.__dict__["annotations"] = OOBTree({"note": "kept"})
    conn.root()["job"] = job
    commit(conn.root())
    loaded = connect().root()["job"]
    assert loaded.get_annotation("note") == "kept" and loaded.annotations["note"] == "kept"
    assert list(loaded.args) == ["old"] and not loaded.kwargs
    assert loaded() == "old"
