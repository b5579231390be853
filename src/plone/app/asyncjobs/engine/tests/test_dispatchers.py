"""Dispatcher records in queues: liveness, death, and cleaning up after the dead.

These run without threads: the testing clock plays the passing of time and
the test plays the dispatchers (pinging, claiming, starting jobs).
"""
import logging
import uuid
from datetime import timedelta

import pytest
import zope.event
from ZODB.POSException import ConflictError

from plone.app.asyncjobs.engine import configure
from plone.app.asyncjobs.engine import events
from plone.app.asyncjobs.engine import status
from plone.app.asyncjobs.engine.agent import Agent
from plone.app.asyncjobs.engine.exceptions import AbortedError
from plone.app.asyncjobs.engine.exceptions import OutcomeUnknownError
from plone.app.asyncjobs.engine.job import Job
from plone.app.asyncjobs.engine.tests import jobs
from plone.app.asyncjobs.engine.tests.support import commit
from plone.app.asyncjobs.engine.tests.support import sync


A, B, C = (uuid.UUID(int=n) for n in (1, 2, 3))


@pytest.fixture
def notified(monkeypatch):
    seen = []
    monkeypatch.setattr(zope.event, "subscribers", zope.event.subscribers + [seen.append])
    return seen


def kinds(notified):
    """(event class name, dispatcher UUID) of the dispatcher events seen."""
    return [(type(event).__name__, event.object.UUID) for event in notified
            if hasattr(getattr(event, "object", None), "UUID")]


def test_register_activate_deactivate_unregister(queue, clock, notified):
    record = queue.dispatchers.register(A)
    assert record.parent is queue.dispatchers and record.queue is queue
    assert not record.activated and not record.dead
    record.activate(process=("host", 123))
    assert record.activated == record.last_ping == clock.now
    assert record.process == ("host", 123)
    with pytest.raises(ValueError, match="is active already"):
        record.activate()
    with pytest.raises(ValueError, match="deactivate it first"):
        queue.dispatchers.unregister(A)
    with pytest.raises(ValueError, match="is registered already"):
        queue.dispatchers.register(A)
    record.deactivate()
    assert record.activated is None
    with pytest.raises(ValueError, match="is not active"):
        record.deactivate()
    assert queue.dispatchers.unregister(A) is record
    assert A not in queue.dispatchers
    assert kinds(notified) == [
        ("DispatcherRegistered", A), ("DispatcherActivated", A),
        ("DispatcherDeactivated", A), ("DispatcherUnregistered", A),
    ]
    assert isinstance(notified[0], events.DispatcherRegistered)


def test_ping_writes_last_ping_once_per_ping_interval(queue, record, clock):
    dispatcher_record = record(A)
    started = clock.now
    clock.advance(seconds=29)
    assert queue.dispatchers.ping(A) is None
    assert dispatcher_record.last_ping == started
    clock.advance(seconds=1)
    queue.dispatchers.ping(A)
    assert dispatcher_record.last_ping == clock.now


def test_a_record_is_dead_after_ping_death_interval_without_a_sign(queue, record, clock):
    dispatcher_record = record(A)
    clock.advance(seconds=60)
    assert not dispatcher_record.dead
    clock.advance(microseconds=1)
    assert dispatcher_record.dead
    queue.dispatchers.ping(A)
    assert not dispatcher_record.dead


def test_the_intervals_are_settings_of_the_record(queue, record, clock):
    dispatcher_record = record(A)
    dispatcher_record.ping_interval = timedelta(seconds=1)
    dispatcher_record.ping_death_interval = timedelta(seconds=3)
    clock.advance(seconds=1)
    queue.dispatchers.ping(A)
    assert dispatcher_record.last_ping == clock.now
    clock.advance(seconds=3, microseconds=1)
    assert dispatcher_record.dead


def test_a_ping_deactivates_the_next_sibling_when_it_is_dead(queue, record, clock, notified):
    alive, silent = record(A), record(B)
    clock.advance(seconds=45)
    assert queue.dispatchers.ping(A) is None  # B is not dead yet
    assert silent.activated
    clock.advance(seconds=16)
    assert queue.dispatchers.ping(A) == B
    assert silent.activated is None
    assert alive.activated and not alive.dead
    assert ("DispatcherDeactivated", B) in kinds(notified)


def test_siblings_are_checked_in_uuid_order_wrapping_around(queue, record, clock):
    first, second, third = record(A), record(B), record(C)
    clock.advance(seconds=61)
    # C checks the next UUID after itself, which wraps around to A.
    assert queue.dispatchers.ping(C) == A
    assert first.activated is None
    # B checks C, which just pinged.
    assert queue.dispatchers.ping(B) is None
    assert third.activated and second.activated
    # C now checks B (A is inactive and skipped).
    clock.advance(seconds=61)
    assert queue.dispatchers.ping(C) == B


def test_a_live_dispatcher_found_deactivated_reactivates(queue, record, clock, notified, caplog):
    record(A)
    wrongly_dead = record(B)
    clock.advance(seconds=61)
    assert queue.dispatchers.ping(A) == B
    with caplog.at_level(logging.CRITICAL, logger="plone.app.asyncjobs.events"):
        queue.dispatchers.ping(B)
    assert wrongly_dead.activated == clock.now
    assert "found deactivated while alive; reactivating" in caplog.text
    assert ("DispatcherReactivated", B) in kinds(notified)


def claimed(agent, job, start=True):
    assert agent.claim_job() is job
    if start:
        job.mark_active()
    return job


def test_the_first_callback_of_an_interrupted_job_counts_a_possible_run(
        queue, record, clock):
    """A job's outcome and the callback it started may be lost together
    with a group commit; so attempts >= runs for the callback too."""
    alive = record(A)
    agent = record(B)["main"]
    agent.size = 10
    active = claimed(agent, queue.put(Job(jobs.echo, "active")))
    callback = active.add_callback(Job(jobs.describe))
    once = claimed(agent, queue.put(Job(jobs.echo, "once")))
    runs_once = once.add_callback(Job(jobs.describe), retry_policy_factory="never")
    commit(queue)
    clock.advance(seconds=61)
    assert queue.dispatchers.ping(A) == B
    commit(queue)
    assert (callback.status, callback.attempts) == (status.NEW, 1)
    assert (runs_once.status, runs_once.attempts) == (status.NEW, 0)  # never grouped

    main = alive["main"]
    main.size = 10
    assert {main.claim_job(), main.claim_job()} == {active, once}
    commit(queue)
    assert active() == "active"
    assert callback.status == status.COMPLETED and callback.attempts == 2


def test_the_jobs_of_a_dead_dispatcher_are_handed_back(queue, record, clock):
    alive = record(A)
    dead = record(B)
    agent = dead["main"]
    agent.size = 10

    assigned = claimed(agent, queue.put(Job(jobs.echo, "assigned")), start=False)
    never_rerun = claimed(agent, queue.put(Job(jobs.echo, "never"), retry_policy_factory="never"),
                          start=False)
    active = claimed(agent, queue.put(Job(jobs.echo, "active")))
    in_callbacks = claimed(agent, queue.put(Job(jobs.echo, "callbacks")))
    callback = in_callbacks.add_callback(Job(jobs.describe))
    in_callbacks._set_result("callbacks")  # as if the worker died in the callbacks
    assert in_callbacks.status == status.CALLBACKS
    done = claimed(agent, queue.put(Job(jobs.echo, "done")), start=False)
    commit(queue)
    done()
    assert done.status == status.COMPLETED
    clock.advance(seconds=1)
    waiting = queue.put(Job(jobs.echo, "waiting"))
    commit(queue)
    assert len(agent) == 5 and len(queue) == 1

    clock.advance(seconds=61)
    assert queue.dispatchers.ping(A) == B
    commit(queue)

    assert len(agent) == 0
    assert assigned.status == status.PENDING
    # It may have run in a group commit that was lost; this one could not.
    assert assigned.get_retry_policy().data["interruptions"] == 1
    assert never_rerun.status == status.PENDING and never_rerun._retry_policy is None
    assert active.status == status.PENDING
    assert active.get_retry_policy().data["interruptions"] == 1
    assert active.active_start is None and active.attempts == 1
    assert done in agent.completed
    assert in_callbacks.status == status.CALLBACKS
    # Handed-back work comes first, the job that was waiting last.
    assert len(queue) == 5
    assert {queue[0], queue[1], queue[2]} == {assigned, never_rerun, active}
    resume = queue[3]
    assert resume.callable == in_callbacks.resume_callbacks
    assert resume.retry_policy_factory == "forever"
    assert resume.failure_log_level == logging.CRITICAL
    assert queue[4] is waiting

    # Another worker picks it all up.
    main = alive["main"]
    main.size = 10
    handed_back = [main.claim_job() for _ in range(5)]
    assert set(handed_back[:4]) == {assigned, never_rerun, active, resume}
    assert handed_back[4] is waiting
    commit(queue)
    resume()
    assert in_callbacks.status == status.COMPLETED
    assert callback.result == "success: 'callbacks'"
    assert active() == "active" and assigned() == "assigned"
    assert active.attempts == 2


def test_an_interrupted_job_that_is_not_retried_fails_and_runs_its_callbacks(
    queue, record, clock
):
    alive = record(A)
    dead = record(B)
    job = queue.put(Job(jobs.echo, 1), retry_policy_factory="never")
    callback = job.add_callback(Job(jobs.describe))
    claimed(dead["main"], job)
    commit(queue)
    clock.advance(seconds=61)
    queue.dispatchers.ping(A)
    commit(queue)
    assert job.result.check(AbortedError)
    assert "died" in job.result.getErrorMessage()
    assert job.status == status.CALLBACKS  # the callbacks run in a job of their own
    (resume,) = list(queue)
    assert claimed(alive["main"], resume, start=False) is resume
    commit(queue)
    resume()
    assert job.status == status.COMPLETED
    assert callback.result.startswith("failure: OutcomeUnknownError: the worker running")
    assert job.result.check(OutcomeUnknownError)
    # It is remembered by the agent that held it, like any completed job.
    assert job in dead["main"].completed


def test_an_aborted_job_without_callbacks_is_in_the_history(queue, record, clock):
    record(A)
    dead = record(B)
    job = queue.put(Job(jobs.echo, 1), retry_policy_factory="never")
    claimed(dead["main"], job)
    commit(queue)
    clock.advance(seconds=61)
    queue.dispatchers.ping(A)
    commit(queue)
    assert job.status == status.COMPLETED and job.result.check(AbortedError)
    assert job in dead["main"].completed
    assert len(dead["main"]) == 0


def test_an_interrupted_callback_is_run_again(queue, record, clock):
    alive = record(A)
    dead = record(B)
    job = queue.put(Job(jobs.echo, 2))
    callback = job.add_callback(Job(jobs.double))
    claimed(dead["main"], job)
    job._set_result(2)
    callback.mark_active()  # the worker died while the callback ran
    commit(queue)
    clock.advance(seconds=61)
    queue.dispatchers.ping(A)
    commit(queue)
    (resume,) = list(queue)
    claimed(alive["main"], resume, start=False)
    commit(queue)
    resume()
    assert callback.status == status.COMPLETED and callback.result == 4
    assert job.status == status.COMPLETED
    assert job in dead["main"].completed


def test_activating_again_hands_back_what_an_earlier_life_left(queue, record, clock):
    dispatcher_record = record(A)
    job = claimed(dispatcher_record["main"], queue.put(Job(jobs.echo, 1)), start=False)
    commit(queue)
    dispatcher_record.activated = None  # a crash before it could clean up
    dispatcher_record.activate()
    assert job.status == status.PENDING and list(queue) == [job]


@pytest.mark.parametrize("how", ["removed", "replaced"])
def test_an_agent_removed_while_a_claim_lands_in_it_conflicts(queue, record, connect, how):
    # The removal saw the agent empty and wrote only the record; the claim
    # wrote only the agent: both committed, and the job was held by an
    # agent no poll, sweep or recovery looks at (active, or completed in
    # no history, for ever).
    dispatcher_record = record(A)
    dispatcher_record["extra"] = Agent(size=1)
    job = queue.put(Job(jobs.echo, 1))
    commit(queue)
    admin = connect()
    admin_record = configure.get_queue(admin).dispatchers[A]
    assert len(admin_record["extra"]) == 0
    claimed(dispatcher_record["extra"], job)
    commit(queue)
    if how == "removed":
        del admin_record["extra"]
    else:
        admin_record["extra"] = Agent()
    with pytest.raises(ConflictError):
        admin.transaction_manager.commit()
    admin.transaction_manager.abort()
    sync(queue)
    assert job.agent is dispatcher_record["extra"] and job.status == status.ACTIVE


def test_agents_holding_jobs_cannot_be_replaced_or_removed(queue, record):
    dispatcher_record = record(A)
    with pytest.raises(ValueError, match="is not an agent"):
        dispatcher_record["other"] = object()
    claimed(dispatcher_record["main"], queue.put(Job(jobs.echo, 1)), start=False)
    with pytest.raises(ValueError, match="holds jobs and cannot be replaced"):
        dispatcher_record["main"] = Agent()
    with pytest.raises(ValueError, match="holds jobs and cannot be removed"):
        del dispatcher_record["main"]
    busy = dispatcher_record["main"]
    with pytest.raises(ValueError, match="cannot add an agent that holds jobs"):
        dispatcher_record["copy"] = busy
    dispatcher_record["idle"] = Agent()
    del dispatcher_record["idle"]
    assert list(dispatcher_record) == ["main"]
    assert repr(dispatcher_record) == f"<DispatcherAgents {A} active, agents ['main']>"
