"""A worker's metrics endpoint: its settings, and a real worker process
scraped over HTTP while it runs jobs."""
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
import transaction
from prometheus_client.parser import text_string_to_metric_families

from plone.app.asyncjobs.deployment import free_ports
from plone.app.asyncjobs.deployment import port_open
from plone.app.asyncjobs.engine import configure
from plone.app.asyncjobs.engine.job import Job
from plone.app.asyncjobs.engine.testing.waiting import wait_for_result
from plone.app.asyncjobs.engine.testing.waiting import wait_until
from plone.app.asyncjobs.engine.testing.zeo import ZEOServer
from plone.app.asyncjobs.engine.tests import jobs
from plone.app.asyncjobs.worker.config import WorkerSettings


JOBS = "plone.app.asyncjobs.engine.tests.jobs"


def test_metrics_settings_from_zope_conf():
    assert WorkerSettings.from_section({}).metrics_port is None
    settings = WorkerSettings.from_section({"metrics-port": "9464"})
    assert (settings.metrics_host, settings.metrics_port) == ("127.0.0.1", 9464)
    settings = WorkerSettings.from_section({"metrics-port": "9464", "metrics-host": "::1"})
    assert settings.metrics_host == "::1"
    with pytest.raises(ValueError, match="metrics-port must be a whole number"):
        WorkerSettings.from_section({"metrics-port": "http"})
    with pytest.raises(ValueError, match="metrics-port must be at least 1"):
        WorkerSettings.from_section({"metrics-port": "0"})
    with pytest.raises(ValueError, match="metrics-port must be at most 65535"):
        WorkerSettings.from_section({"metrics-port": "65536"})
    with pytest.raises(ValueError, match="metrics-host needs metrics-port"):
        WorkerSettings.from_section({"metrics-host": "0.0.0.0"})


def _get(port, path="metrics"):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/{path}", timeout=10) as response:
        return response.read().decode()


def _counts(port):
    """``{(name, frozenset(labels)): value}`` scraped from the worker."""
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(_get(port))
            for sample in family.samples}


def _value(samples, name, **labels):
    found = [v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= ls]
    return sum(found)


@pytest.fixture
def zeo(tmp_path):
    with ZEOServer(tmp_path / "zeo") as server:
        yield server


@pytest.fixture
def worker(tmp_path, zeo):
    """A worker process serving its metrics on a free port; always stopped."""
    port = free_ports(1)[0]
    config = tmp_path / "storage.conf"
    config.write_text(zeo.client_storage_config())
    ready = tmp_path / "worker.ready"
    log_path = tmp_path / "worker.log"
    env = dict(os.environ, ZC_ASYNC_UUID=str(tmp_path / "worker-uuid.txt"))
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "plone.app.asyncjobs.tests.metrics_worker", str(config),
             str(port), str(ready)], stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        wait_until(lambda: ready.exists() or process.poll() is not None, 60,
                   describe=lambda: "for the worker to start")
        assert ready.exists(), f"the worker exited:\n{log_path.read_text()}"
        yield port
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            assert process.wait(30) == 0, log_path.read_text()
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert not port_open("127.0.0.1", port), "the metrics endpoint outlived its worker"


def test_a_worker_process_serves_metrics_that_move_as_jobs_run(worker, zeo):
    port = worker
    before = _counts(port)
    assert _value(before, "asyncjobs_dispatcher_up") == 1
    assert _value(before, "asyncjobs_jobs_started_total") == 0

    db = zeo.db()
    manager = transaction.TransactionManager()
    connection = db.open(transaction_manager=manager)
    try:
        queue = configure.get_queue(connection)
        queued = [queue.put(Job(jobs.add, number, 1)) for number in range(3)]
        queued.append(queue.put(Job(jobs.boom, "bad")))
        manager.commit()
        for job in queued:
            wait_for_result(job, seconds=60)
    finally:
        manager.abort()
        connection.close()
        db.close()

    def settled():
        # The counts follow the outcomes' commits; finished jobs reach the
        # histories counted in the queue depths at their agent's next sweep.
        samples = _counts(port)
        return (_value(samples, "asyncjobs_jobs_failed_total") == 1
                and _value(samples, "asyncjobs_queue_jobs", state="completed") == 3)

    wait_until(settled, 30)
    after = _counts(port)
    assert _value(after, "asyncjobs_jobs_started_total") == 4
    assert _value(after, "asyncjobs_jobs_completed_total", queue="",
                  callable=f"{JOBS}.add") == 3
    assert _value(after, "asyncjobs_jobs_failed_total", callable=f"{JOBS}.boom") == 1
    assert _value(after, "asyncjobs_job_run_seconds_count") == 4
    assert _value(after, "asyncjobs_job_pickup_latency_seconds_count") == 4
    assert _value(after, "asyncjobs_claimed_jobs_total") >= 4
    assert _value(after, "asyncjobs_agent_size", queue="", agent="main") == 3
    assert _value(after, "asyncjobs_queue_jobs", queue="", state="completed") == 3
    assert _value(after, "asyncjobs_queue_jobs", queue="", state="failed") == 1
    assert _value(after, "asyncjobs_queue_jobs", queue="", state="pending") == 0
    with pytest.raises(urllib.error.HTTPError) as error:
        _get(port, "other")
    assert error.value.code == 404
