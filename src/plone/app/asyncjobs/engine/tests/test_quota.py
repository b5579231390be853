"""Quotas: how many jobs with a name may run at once, across workers."""
import functools
import uuid

import pytest
from ZODB.POSException import ConflictError

from plone.app.asyncjobs.engine import configure
from plone.app.asyncjobs.engine import status
from plone.app.asyncjobs.engine.agent import MAX_SIZE
from plone.app.asyncjobs.engine.job import Job
from plone.app.asyncjobs.engine.retry import DelayedRetry
from plone.app.asyncjobs.engine.testing.waiting import wait_for_poll
from plone.app.asyncjobs.engine.testing.waiting import wait_for_result
from plone.app.asyncjobs.engine.testing.waiting import wait_for_start
from plone.app.asyncjobs.engine.tests import jobs
from plone.app.asyncjobs.engine.tests.support import STORAGES
from plone.app.asyncjobs.engine.tests.support import commit
from plone.app.asyncjobs.engine.tests.support import sync


def test_quotas_are_created_checked_and_removed(queue):
    quota = queue.quotas.create("mail", size=2)
    assert queue.quotas["mail"] is quota
    assert (quota.name, quota.size, len(quota), quota.filled) == ("mail", 2, 0, False)
    assert repr(quota) == "<Quota 'mail' 0/2>"
    with pytest.raises(ValueError, match="quota 'mail' exists already"):
        queue.quotas.create("mail")
    with pytest.raises(ValueError, match="a quota name must be a non-empty string"):
        queue.quotas.create("")
    with pytest.raises(ValueError, match="a quota size must be a positive integer, not 0"):
        queue.quotas.create("none", size=0)
    queue.quotas.check_names(["mail"])
    queue.quotas.remove("mail")
    assert "mail" not in queue.quotas


def test_an_unknown_quota_name_is_refused_at_put(queue):
    with pytest.raises(ValueError, match=r"unknown quota name 'mail'; create it first"):
        queue.put(Job(jobs.echo, 1), quota_names=("mail",))
    job = Job(jobs.echo, 1)
    job.quota_names = ("mail",)  # a new job may name any quota...
    with pytest.raises(ValueError, match="unknown quota name 'mail'"):
        queue.put(job)  # ...but the queue must have it
    assert len(queue) == 0


def test_quota_names_of_a_pending_job_are_checked_against_its_queue(queue):
    queue.quotas.create("mail")
    job = queue.put(Job(jobs.echo, 1), quota_names=["mail"])
    assert job.quota_names == ("mail",)
    with pytest.raises(ValueError, match="unknown quota name 'nope'"):
        job.quota_names = ("nope",)
    with pytest.raises(TypeError, match="not the string 'mail'"):
        job.quota_names = "mail"
    job.quota_names = ()
    assert job.quota_names == ()


def test_a_full_quota_makes_claims_skip_its_jobs(queue, record):
    agent = record()["main"]
    queue.quotas.create("mail", size=1)
    limited = {
        queue.put(Job(jobs.echo, name), quota_names=("mail",)) for name in ("a", "b")
    }
    free = queue.put(Job(jobs.echo, "free"))
    commit(queue)
    quota = queue.quotas["mail"]

    claimed = {agent.claim_job(), agent.claim_job()}
    assert agent.claim_job() is None  # the agent has room, the quota has not
    assert free in claimed
    (running,) = claimed & limited
    (waiting,) = limited - claimed
    assert list(quota) == [running] and quota.filled
    assert waiting.status == status.PENDING
    commit(queue)

    running()
    assert len(quota) == 0 and not quota.filled  # freed on completion
    assert agent.claim_job() is waiting
    assert list(quota) == [waiting]


def test_a_rescheduled_job_frees_its_quota_slot(queue, record, clock):
    agent = record()["main"]
    queue.quotas.create("mail", size=1)
    job = queue.put(
        Job(jobs.fail_times, "mail", 1),
        quota_names=("mail",),
        retry_policy_factory=functools.partial(DelayedRetry, base_delay=60, jitter=0),
    )
    commit(queue)
    assert agent.claim_job() is job
    other = queue.put(Job(jobs.echo, "other"), quota_names=("mail",))
    commit(queue)
    assert queue.quotas["mail"].filled
    assert agent.claim_job() is None
    assert job() is job  # rescheduled
    assert job.status == status.PENDING
    assert len(queue.quotas["mail"]) == 0
    assert agent.claim_job() is other  # the slot is free for another job


def test_an_interrupted_job_frees_its_quota_slot(queue, record, clock):
    alive = record(uuid.UUID(int=1))
    dying = record(uuid.UUID(int=2))
    queue.quotas.create("mail", size=1)
    job = queue.put(Job(jobs.echo, 1), quota_names=("mail",))
    commit(queue)
    assert dying["main"].claim_job() is job
    job.mark_active()
    commit(queue)
    assert queue.quotas["mail"].filled
    clock.advance(seconds=61)
    assert queue.dispatchers.ping(alive.UUID) == dying.UUID
    assert job.status == status.PENDING
    assert not queue.quotas["mail"].filled
    assert alive["main"].claim_job() is job


def test_quota_of_one_serialises_jobs_across_two_dispatchers(
    queues, queue, start_dispatcher
):
    queue.quotas.create("serial", size=1)
    serialised = [
        queue.put(Job(jobs.track_concurrency, 2, 0.25, n), quota_names=("serial",))
        for n in range(4)
    ]
    commit(queue)
    first = start_dispatcher(uuid=uuid.uuid4())
    second = start_dispatcher(uuid=uuid.uuid4())
    assert sorted(wait_for_result(job) for job in serialised) == [0, 1, 2, 3]
    assert jobs.concurrency["max"] == 1
    ran_in = {j.agent.parent.UUID for j in serialised}
    assert ran_in <= {first.uuid, second.uuid}

    # Without the quota, the same jobs overlap (so the count above means something).
    jobs.reset()
    free = [queue.put(Job(jobs.track_concurrency, 2, 5, n)) for n in range(2)]
    commit(queue)
    assert sorted(wait_for_result(job) for job in free) == [0, 1]
    assert jobs.concurrency["max"] == 2


def test_a_running_job_holds_its_slot_until_it_completes(dispatcher, queue):
    queue.quotas.create("one", size=1)
    blocker = queue.put(Job(jobs.wait_for_event, "blocker", "b"), quota_names=("one",))
    commit(queue)
    wait_for_start(blocker)
    waiting = queue.put(Job(jobs.echo, "w"), quota_names=("one",))
    commit(queue)
    wait_for_poll(dispatcher, 2)  # the workers had their chances to claim it
    sync(queue)
    quota = queue.quotas["one"]
    assert list(quota) == [blocker]
    assert waiting.status == status.PENDING
    jobs.event("blocker").set()
    assert wait_for_result(waiting) == "w"
    assert wait_for_result(blocker) == "b"
    assert waiting.active_start >= blocker.active_end


@pytest.mark.parametrize("db", STORAGES, indirect=True)
@pytest.mark.parametrize("first", ["claim", "re-creation", "creation"])
def test_re_creating_a_quota_while_a_job_is_claimed_conflicts(
        queue, record, connect, first):
    # Both committed: the claimed job ran, and the new quota, which counts
    # the jobs the agents hold, did not count it: a second job could run.
    agent = record()["main"]
    queue.quotas.create("mail", size=1)
    job = queue.put(Job(jobs.echo, 1), quota_names=("mail",))
    commit(queue)
    if first == "creation":  # the claim sees no quota: it limits nothing
        queue.quotas.remove("mail")
        commit(queue)
    admin = configure.get_queue(connect()).quotas
    assert len(queue.quotas) == len(admin)  # both transactions have begun

    def claim():
        assert agent.claim_job() is job

    def re_create():
        if "mail" in admin:
            admin.remove("mail")
        admin.create("mail", size=1)

    steps = {"claim": (claim, queue.quotas), "re-creation": (re_create, admin)}
    order = ["claim", "re-creation"] if first == "claim" else ["re-creation", "claim"]
    for name in order:
        steps[name][0]()
    steps[order[0]][1]._p_jar.transaction_manager.commit()
    late = steps[order[1]][1]._p_jar.transaction_manager
    with pytest.raises(ConflictError):
        late.commit()
    late.abort()
    steps[order[1]][0]()  # again, seeing what the other committed
    late.commit()
    sync(queue)
    assert list(queue.quotas["mail"]) == [job]


def test_a_quota_re_created_reads_every_bucket_of_a_large_agent_as_current(
        queue, record, connect):
    # An agent holding many jobs keeps them in several buckets; a claim
    # changes only one of them.
    agent = record(agents=[("main", MAX_SIZE)])["main"]
    queue.quotas.create("mail", size=1)
    for number in range(MAX_SIZE - 1):
        queue.put(Job(jobs.echo, number))
    commit(queue)
    while agent.claim_job() is not None:
        pass
    commit(queue)
    assert len(agent._held.__getstate__()[0]) > 1, "the agent's jobs fit one bucket"
    job = queue.put(Job(jobs.echo, "last"), quota_names=("mail",))
    commit(queue)
    admin = configure.get_queue(connect()).quotas
    assert len(admin) == 1
    assert agent.claim_job() is job
    commit(queue)
    admin.remove("mail")
    admin.create("mail", size=1)
    with pytest.raises(ConflictError):
        admin._p_jar.transaction_manager.commit()
