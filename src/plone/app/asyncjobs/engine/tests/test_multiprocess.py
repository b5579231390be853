"""Real processes: a ZEO server (or PostgreSQL), worker processes, producers.

These are the engine's acceptance tests: jobs cross process boundaries,
every job runs exactly once, a worker killed with SIGKILL loses nothing.
"""
import collections
import subprocess
import sys
import threading

import psycopg2
import pytest
import transaction
from ZODB.POSException import ConflictError

from plone.app.asyncjobs.engine import configure
from plone.app.asyncjobs.engine.job import Job
from plone.app.asyncjobs.engine.status import COMPLETED
from plone.app.asyncjobs.engine.testing import jobs
from plone.app.asyncjobs.engine.testing.postgres import PostgreSQLDatabase
from plone.app.asyncjobs.engine.testing.processes import WorkerProcess
from plone.app.asyncjobs.engine.testing.waiting import wait_until
from plone.app.asyncjobs.engine.workers import BATCH


@pytest.fixture
def postgres():
    if not PostgreSQLDatabase.available():
        pytest.skip("no PostgreSQL server on 127.0.0.1:5432")
    database = PostgreSQLDatabase().create()
    yield database
    database.drop()


@pytest.fixture
def workers(tmp_path):
    started = []

    def start(storage_config, name, **options):
        worker = WorkerProcess(tmp_path / "workers", storage_config, name, **options)
        started.append(worker)
        return worker.start()

    yield start
    for worker in started:
        worker.kill()


def _connection(db):
    manager = transaction.TransactionManager()
    return db.open(transaction_manager=manager), manager


def _produce(storage_config, directory, count, records):
    config = directory / "producer.conf"
    config.write_text(storage_config)
    subprocess.run(
        [sys.executable, "-m", "plone.app.asyncjobs.engine.testing.processes", "produce",
         str(config), "--function", "plone.app.asyncjobs.engine.testing.jobs:record",
         "--argument", str(records), "--count", str(count), "--batch", "100"],
        check=True, timeout=120,
    )


def _start_holding_job(queue, manager, directory, number):
    """Queue a job that runs until its gate file exists; wait until it started.

    Returns the job, the file its start is recorded in, and the gate.
    """
    started, gate = directory / "started.txt", directory / "gate"
    job = queue.put(Job(jobs.hold_until, str(started), str(gate), number))
    manager.commit()
    wait_until(lambda: jobs.read_records(started), seconds=30,
               describe=lambda: "for the job to start")
    return job, started, gate


def _completed_jobs(queue):
    return [job for record in queue.dispatchers.values()
            for agent in record.values() for job in agent.completed]


def _run_each_job_once(db, storage_config, tmp_path, workers, count):
    configure.install_queues(db)
    first = workers(storage_config, "first")
    second = workers(storage_config, "second")
    records = tmp_path / "records.txt"
    _produce(storage_config, tmp_path, count, records)

    wait_until(lambda: len(jobs.read_records(records)) >= count, seconds=120,
               describe=lambda: f"{len(jobs.read_records(records))} of {count} jobs ran")
    connection, manager = _connection(db)
    queue = configure.get_queue(connection)

    def all_settled():
        manager.begin()
        held = sum(len(agent) for record in queue.dispatchers.values() for agent in record.values())
        return len(queue) == 0 and held == 0

    wait_until(all_settled, seconds=60, describe=lambda: "for queues and agents to empty")
    ran = jobs.read_records(records)
    numbers = sorted(number for number, _ in ran)
    assert numbers == list(range(count)), "every job ran exactly once"
    assert {pid for _, pid in ran} == {first.pid, second.pid}, "both workers took jobs"
    completed = _completed_jobs(queue)
    assert len(completed) == count
    assert all(job.status == COMPLETED for job in completed)
    assert sorted(job.result for job in completed) == list(range(count))
    assert first.stop() == 0 and second.stop() == 0
    manager.begin()
    assert not any(record.activated for record in queue.dispatchers.values())
    connection.close()


def test_two_workers_over_zeo_run_2000_jobs_exactly_once(zeo, tmp_path, workers):
    db = zeo.db()
    try:
        _run_each_job_once(db, zeo.client_storage_config(), tmp_path, workers, 2000)
    finally:
        db.close()


def test_two_workers_over_relstorage_run_each_job_once(postgres, tmp_path, workers):
    db = postgres.db()
    try:
        _run_each_job_once(db, postgres.zconfig(), tmp_path, workers, 300)
    finally:
        db.close()


def test_killed_worker_job_runs_again_in_its_sibling(zeo, tmp_path, workers):
    db = zeo.db()
    configure.install_queues(db)
    config = zeo.client_storage_config()
    options = dict(poll_interval=0.1, ping_interval=0.3, ping_death_interval=1.5)
    first = workers(config, "first", **options)
    second = workers(config, "second", **options)
    connection, manager = _connection(db)
    queue = configure.get_queue(connection)
    job, started, gate = _start_holding_job(queue, manager, tmp_path, 7)
    [(_, victim_pid)] = jobs.read_records(started)
    victim, survivor = (first, second) if victim_pid == first.pid else (second, first)
    victim_uuid = victim.uuid
    victim.kill()
    gate.touch()

    wait_until(lambda: job.status == COMPLETED, seconds=30, sync=manager.begin,
               describe=lambda: f"for {job!r} to complete after the kill ({job.status})")
    assert job.result == 7
    assert [pid for _, pid in jobs.read_records(started)] == [victim_pid, survivor.pid]
    assert job.attempts == 2
    assert job.get_retry_policy().data["interruptions"] == 1
    dead_record = queue.dispatchers[victim_uuid]
    assert dead_record.activated is None, "the dead worker was deactivated"
    assert queue.dispatchers[survivor.uuid].activated is not None
    connection.close()
    survivor.stop()
    db.close()


def test_restarted_worker_recovers_its_own_jobs(zeo, tmp_path, workers):
    db = zeo.db()
    configure.install_queues(db)
    config = zeo.client_storage_config()
    worker = workers(config, "only", poll_interval=0.1)
    connection, manager = _connection(db)
    job, started, gate = _start_holding_job(configure.get_queue(connection), manager,
                                            tmp_path, 3)
    first_pid = worker.pid
    worker.kill()
    gate.touch()
    # Same UUID file, new process: no sibling exists to notice the death,
    # and the default death interval (60 s) has not passed.
    worker.start()
    wait_until(lambda: job.status == COMPLETED, seconds=30, sync=manager.begin,
               describe=lambda: f"for {job!r} to complete after the restart ({job.status})")
    assert [pid for _, pid in jobs.read_records(started)] == [first_pid, worker.pid]
    assert job.result == 3
    connection.close()
    worker.stop()
    db.close()


def test_concurrent_producers_rarely_conflict_and_lose_nothing(zeo):
    db = zeo.db(pool_size=8)
    try:
        _produce_concurrently(db, threads_count=8, per_thread=500)
    finally:
        db.close()


def test_concurrent_producers_of_unique_jobs_rarely_conflict(zeo):
    """Unique keys (all different) add writes to the queue's unique index:
    the producers still conflict in under 1% of their commits."""
    db = zeo.db(pool_size=8)
    try:
        _produce_concurrently(db, threads_count=8, per_thread=500, unique=True)
    finally:
        db.close()


def test_producer_processes_putting_the_same_keys_at_once_queue_one_job_per_key(zeo, tmp_path):
    """Two processes put jobs with the keys key-0 ... key-299, one per
    commit, started together: the unique index makes them conflict on
    every key both put at once, and the retry finds the other's job."""
    count = 300
    db = zeo.db()
    configure.install_queues(db)
    config = tmp_path / "producer.conf"
    config.write_text(zeo.client_storage_config())
    gate = tmp_path / "gate"
    ready = [tmp_path / f"ready-{n}" for n in range(2)]
    producers = [subprocess.Popen(
        [sys.executable, "-m", "plone.app.asyncjobs.engine.testing.processes", "produce",
         str(config), "--function", "plone.app.asyncjobs.engine.testing.jobs:record",
         "--argument", str(tmp_path / "records.txt"), "--count", str(count), "--batch", "1",
         "--unique-keys", "--ready-file", str(path), "--gate", str(gate)],
        stdout=subprocess.PIPE, text=True) for path in ready]
    try:
        wait_until(lambda: all(path.exists() for path in ready), seconds=60,
                   describe=lambda: "for both producers to open the database")
        gate.touch()
        outputs = [producer.communicate(timeout=120)[0] for producer in producers]
    finally:
        for producer in producers:
            producer.kill()
            producer.wait()
    assert [producer.returncode for producer in producers] == [0, 0], outputs
    connection, manager = _connection(db)
    queue = configure.get_queue(connection)
    keys = collections.Counter(job.unique_key for job in queue)
    connection.close()
    db.close()
    assert keys == collections.Counter(f"key-{n}" for n in range(count)), \
        "one job per key"


def _produce_concurrently(db, threads_count, per_thread, unique=False):
    configure.install_queues(db)
    conflicts = []
    barrier = threading.Barrier(threads_count)

    def produce(thread):
        connection, manager = _connection(db)
        queue = configure.get_queue(connection)
        barrier.wait()
        for number in range(per_thread):
            while True:
                key = f"thread-{thread}-{number}" if unique else None
                queue.put(Job(jobs.record, f"thread-{thread}", number), unique_key=key)
                try:
                    manager.commit()
                    break
                except ConflictError:
                    manager.abort()
                    conflicts.append((thread, number))
        connection.close()

    producers = [threading.Thread(target=produce, args=(t,)) for t in range(threads_count)]
    for producer in producers:
        producer.start()
    for producer in producers:
        producer.join(120)
    assert not any(p.is_alive() for p in producers)

    connection, manager = _connection(db)
    queue = configure.get_queue(connection)
    queued = sorted((job.args[0], job.args[1]) for job in queue)
    expected = sorted((f"thread-{t}", n) for t in range(threads_count) for n in range(per_thread))
    connection.close()
    assert queued == expected, "every job is queued exactly once"
    commits = threads_count * per_thread + len(conflicts)
    assert len(conflicts) < 0.01 * commits, f"{len(conflicts)} conflicts in {commits} commits"


def test_worker_killed_during_a_drain_loses_nothing(zeo, tmp_path, workers):
    """Batches of claimed jobs go back to the queue when their worker dies.

    Only jobs whose results were not committed when the worker was killed
    can run twice: the job each thread was running, and the jobs of its
    batch whose outcomes waited for a group commit.  Their retry policies
    record the interruption.  Unstarted jobs of the dead worker's batches
    run once.
    """
    db = zeo.db()
    configure.install_queues(db)
    config = zeo.client_storage_config()
    options = dict(poll_interval=0.1, ping_interval=0.3, ping_death_interval=1.5)
    victim = workers(config, "victim", **options)
    survivor = workers(config, "survivor", **options)
    records, count = tmp_path / "records.txt", 1500
    _produce(config, tmp_path, count, records)
    # Well into a drain: the victim's threads claim batches.
    wait_until(lambda: sum(pid == victim.pid for _, pid in jobs.read_records(records)) >= 100,
               seconds=60, describe=lambda: "for the victim to run jobs")
    victim.kill()

    wait_until(lambda: len({n for n, _ in jobs.read_records(records)}) >= count, seconds=120,
               describe=lambda: f"{len(jobs.read_records(records))} of {count} jobs ran")
    connection, manager = _connection(db)
    queue = configure.get_queue(connection)
    wait_until(lambda: len(_completed_jobs(queue)) >= count, seconds=60, sync=manager.begin,
               describe=lambda: "for every job to reach a history")
    ran = collections.Counter(number for number, _ in jobs.read_records(records))
    twice = sorted(number for number, times in ran.items() if times > 1)
    assert set(ran) == set(range(count))
    assert max(ran.values()) <= 2
    assert len(twice) <= 3 * BATCH, "only a batch per thread runs again"
    by_number = {job.result: job for job in _completed_jobs(queue)}
    assert sorted(by_number) == list(range(count))
    assert all(by_number[number].retry_policy.data["interruptions"] == 1 for number in twice)
    assert queue.dispatchers[victim.uuid].activated is None
    connection.close()
    survivor.stop()
    db.close()


# -- pickup by push: the workers poll once a minute, longer than the tests wait ------


RARELY = 60


def _completes(db, seconds=30):
    """Queue a job; wait until it completed; return it."""
    connection, manager = _connection(db)
    job = configure.get_queue(connection).put(Job(jobs.noop))
    manager.commit()
    wait_until(lambda: job.status == COMPLETED, seconds=seconds, sync=manager.begin,
               describe=lambda: f"for {job!r} to complete")
    connection.close()
    return job


def test_a_job_queued_over_zeo_starts_by_push(zeo, tmp_path, workers):
    db = zeo.db()
    try:
        configure.install_queues(db)
        workers(zeo.client_storage_config(), "pushed", poll_interval=RARELY)
        _completes(db)
        _completes(db)
    finally:
        db.close()


def test_a_job_queued_over_relstorage_starts_by_push(postgres, tmp_path, workers):
    db = postgres.db()
    try:
        configure.install_queues(db)
        workers(postgres.zconfig(), "notified", poll_interval=RARELY)
        _completes(db)
        _completes(db)
    finally:
        db.close()


def test_the_listener_reconnects_when_postgresql_drops_it(postgres, tmp_path, workers):
    db = postgres.db()
    try:
        configure.install_queues(db)
        workers(postgres.zconfig(), "notified", poll_interval=RARELY)
        _completes(db)
        with psycopg2.connect(postgres.dsn) as admin, admin.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                           "WHERE application_name = 'asyncjobs doorbell listener'")
            assert cursor.fetchall(), "the worker listened"
        admin.close()
        # Queued while the listener may be away: found when it is back.
        _completes(db, seconds=60)
    finally:
        db.close()


def test_without_push_the_poll_picks_jobs_up_over_zeo(zeo, tmp_path, workers):
    db = zeo.db()
    try:
        configure.install_queues(db)
        workers(zeo.client_storage_config(), "polling", poll_interval=0.2, push=False)
        _completes(db)
    finally:
        db.close()
