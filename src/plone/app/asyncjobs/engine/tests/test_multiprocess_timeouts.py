"""Time limits in a real worker process over a real ZEO server."""
import transaction

from plone.app.asyncjobs.engine import configure
from plone.app.asyncjobs.engine.exceptions import JobTimeoutError
from plone.app.asyncjobs.engine.failure import is_failure
from plone.app.asyncjobs.engine.job import Job
from plone.app.asyncjobs.engine.status import COMPLETED
from plone.app.asyncjobs.engine.testing import jobs
from plone.app.asyncjobs.engine.testing.processes import WorkerProcess
from plone.app.asyncjobs.engine.testing.waiting import wait_until


def completed(job, manager):
    wait_until(lambda: job.status == COMPLETED, seconds=60, sync=manager.begin,
               describe=lambda: f"for {job!r} to complete ({job.status})")
    return job.result


def timed_out(result):
    return (is_failure(result) and result.check(JobTimeoutError)
            and result.getErrorMessage() == "timed out after 0.5 s")


def test_over_zeo_a_job_past_its_limit_is_stopped_or_abandoned_and_its_slot_freed(
        zeo, tmp_path):
    db = zeo.db()
    manager = transaction.TransactionManager()
    connection = db.open(transaction_manager=manager)
    worker = WorkerProcess(tmp_path / "workers", zeo.client_storage_config(), "limited",
                           poll_interval=0.2, agent_size=1)
    try:
        configure.install_queues(db)
        manager.begin()
        queue = configure.get_queue(connection)
        queue.timeout_grace = 0.5
        manager.commit()
        worker.start()
        started, gate, done = (tmp_path / name for name in ("started", "gate", "done"))
        honouring = queue.put(Job(jobs.stop_when_asked, str(tmp_path / "honouring")),
                              timeout=0.5)
        manager.commit()
        assert timed_out(completed(honouring, manager))

        slow = queue.put(Job(jobs.hold_then_write, str(started), str(gate), str(done), "slow"),
                         timeout=0.5)
        manager.commit()
        assert timed_out(completed(slow, manager))
        # The only thread of the agent was replaced: another job runs.
        quick = queue.put(Job(jobs.record, str(tmp_path / "quick"), 7))
        manager.commit()
        assert completed(quick, manager) == 7
        # The abandoned thread is interrupted: its job ends without its gate
        # ever opening, and its write is not committed.
        wait_until(lambda: jobs.read_records(done), seconds=60,
                   describe=lambda: "for the abandoned job to be interrupted")
        manager.begin()
        assert not gate.exists()
        assert "slow" not in connection.root(), "the abandoned attempt's write was committed"
        assert timed_out(slow.result) and slow.attempts == 1
        assert len(jobs.read_records(started)) == 1
    finally:
        worker.kill()
        connection.close()
        db.close()
