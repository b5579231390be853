"""Priorities: among due jobs, higher priority is claimed first."""
from datetime import timedelta

import pytest

from plone.app.asyncjobs.engine import listing
from plone.app.asyncjobs.engine import pickups
from plone.app.asyncjobs.engine.ids import object_id
from plone.app.asyncjobs.engine.job import Job
from plone.app.asyncjobs.engine.queue import LANES
from plone.app.asyncjobs.engine.testing.waiting import wait_for_result
from plone.app.asyncjobs.engine.tests import jobs
from plone.app.asyncjobs.engine.tests.support import claim_one_per_lane
from plone.app.asyncjobs.engine.tests.support import commit


def test_due_jobs_of_higher_priority_are_claimed_first(queue, clock):
    low = queue.put(Job(jobs.echo, "low"), priority=-1)
    plain = queue.put(Job(jobs.echo, "plain"))
    clock.advance(seconds=1)
    high = queue.put(Job(jobs.echo, "high"), priority=5)
    higher_not_due = queue.put(Job(jobs.echo, "not due"), priority=9,
                               begin_after=clock.now + timedelta(minutes=1))
    commit(queue)
    assert [queue.claim() for _ in range(4)] == [high, plain, low, None]
    clock.advance(minutes=1)
    assert queue.claim() is higher_not_due
    assert len(queue) == 0


def test_equal_priorities_keep_due_order(queue, clock):
    positions = claim_one_per_lane(queue, clock, lambda number: Job(jobs.echo, number), priority=2)
    assert sorted(positions) == list(range(256))
    # As without priorities (see test_queue): about due order.
    assert sum(positions[:128]) < sum(positions[128:])


def test_handed_back_jobs_still_come_first(queue):
    high = queue.put(Job(jobs.echo, "high"), priority=100)
    back = Job(jobs.echo, "back")
    queue.put_back(back)
    commit(queue)
    assert [queue.claim(), queue.claim()] == [back, high]


def test_reading_the_queue_sees_jobs_of_every_priority(queue, clock):
    plain = queue.put(Job(jobs.echo, "plain"))
    clock.advance(seconds=1)
    high = queue.put(Job(jobs.echo, "high"), priority=3)
    clock.advance(seconds=1)
    low = queue.put(Job(jobs.echo, "low"), priority=-3,
                    begin_after=clock.now + timedelta(minutes=1))
    commit(queue)
    assert len(queue) == 3
    assert list(queue) == [high, plain, low]  # by priority, then due time
    assert queue[0] is high and queue[-1] is low
    assert [job for _, job in queue.items()] == [plain, high, low]  # by due time
    assert [job for _, job in queue.items(reverse=True)] == [low, high, plain]
    assert queue.has_due_jobs()
    heads = dict(queue.lane_heads())
    for job in (plain, high, low):
        lane = job._queue_key[0]
        number = lane[1] if isinstance(lane, tuple) else lane
        assert heads[number] <= job.due_microseconds()
    queue.remove(high)
    queue.remove(plain)
    assert list(queue) == [low]
    assert not queue.has_due_jobs()
    clock.advance(minutes=1)
    assert queue.has_due_jobs()
    assert queue.pull() is low and len(queue) == 0


def test_a_priority_job_rings_the_doorbell_of_its_lane_number(queue):
    job = queue.put(Job(jobs.echo, 1), priority=1)
    commit(queue)
    priority, number = job._queue_key[0]
    assert priority == 1
    assert [doorbell() for doorbell in queue.doorbells] == [
        1 if lane == number else 0 for lane in range(LANES + 1)]


def test_a_retried_job_keeps_its_priority(queue, record, clock):
    agent = record()["main"]
    job = queue.put(Job(jobs.echo, "job"), priority=4)
    commit(queue)
    assert agent.claim_job() is job
    job.return_to_queue(first=False)
    commit(queue)
    assert job.priority == 4 and job._queue_key[0][0] == 4
    assert job.copy().priority == 4


def test_the_default_priority_stays_out_of_the_job_record(queue):
    assert "priority" not in queue.put(Job(jobs.reset), priority=0).__getstate__()
    assert queue.put(Job(jobs.reset), priority=2).__getstate__()["priority"] == 2


@pytest.mark.parametrize("bad", ["1", 1.5, True, None.__class__])
def test_a_priority_must_be_an_integer(queue, bad):
    with pytest.raises(TypeError, match="priority must be an integer"):
        queue.put(Job(jobs.echo, 1), priority=bad)
    assert len(queue) == 0


def test_a_priority_job_starts_by_push(queue, start_dispatcher):
    dispatcher = start_dispatcher(poll_interval=60)
    job = queue.put(Job(jobs.add, 2, 3), priority=7)
    commit(queue)
    assert wait_for_result(job, seconds=30) == 5
    assert dispatcher.job_info(object_id(job)[0])["pickup"] == pickups.PUSH


def test_the_pending_listing_shows_jobs_of_every_priority(queue, clock):
    plain = queue.put(Job(jobs.echo, "plain"))
    clock.advance(seconds=1)
    high = queue.put(Job(jobs.echo, "high"), priority=3)
    commit(queue)
    page = listing.find_jobs(queue.parent, listing.PENDING)
    assert [job for _, job in page.jobs] == [plain, high]
    assert listing.count_jobs(queue)[listing.PENDING] == 2
