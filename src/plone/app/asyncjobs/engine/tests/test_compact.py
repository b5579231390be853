"""Attributes kept in a compact form in a job's record (engine/compact.py)."""
import uuid
from datetime import datetime
from datetime import timezone

from plone.app.asyncjobs.engine.clock import to_microseconds
from plone.app.asyncjobs.engine.job import Job
from plone.app.asyncjobs.engine.testing.waiting import wait_for_result
from plone.app.asyncjobs.engine.tests import jobs
from plone.app.asyncjobs.engine.tests.support import commit


START = datetime(2026, 12, 6, 10, 0, 0, 123456, tzinfo=timezone.utc)
ASSIGNER = uuid.UUID("12345678-1234-5678-1234-567812345678")


def test_run_times_and_assigner_are_stored_compactly_and_read_in_their_types(
        dispatcher, queue, connect):
    job = queue.put(Job(jobs.add, 1, 2))
    job.assigner_uuid = ASSIGNER
    commit(queue)
    wait_for_result(job)
    state = job.__getstate__()
    assert type(state["_active_start"]) is int and type(state["_active_end"]) is int
    assert state["_assigner_uuid"] == ASSIGNER.bytes
    assert not {"active_start", "active_end", "assigner_uuid"} & state.keys()
    loaded = connect().get(job._p_oid)
    assert loaded.active_start.tzinfo is timezone.utc
    assert loaded.active_start <= loaded.active_end and loaded.assigner_uuid == ASSIGNER


def test_values_stored_by_an_earlier_version_read_as_they_were(conn, connect):
    job = Job(jobs.add, 1, 2)
    job.__dict__.update(active_start=START, active_end=START, assigner_uuid=ASSIGNER)
    conn.root()["job"] = job
    commit(conn.root())
    loaded = connect().root()["job"]
    assert loaded.active_start == START and loaded.active_end == START
    assert loaded.assigner_uuid == ASSIGNER
    loaded.active_end = START.replace(hour=11)
    assert loaded._active_end == to_microseconds(START.replace(hour=11))
    assert "active_end" not in loaded.__getstate__()


def test_an_assigner_that_is_not_a_uuid_is_kept_as_it_is():
    # zc.async's assignerUUID took anything.
    job = Job(jobs.add, 1, 2)
    job.assigner_uuid = "worker-7"
    assert job.assigner_uuid == "worker-7" and job.assignerUUID == "worker-7"
