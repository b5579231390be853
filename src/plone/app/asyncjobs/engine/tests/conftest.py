"""Fixtures of the engine tests: a FileStorage database, queues, dispatchers, a clock.

Every test gets its own ``ZC_ASYNC_UUID`` file in ``tmp_path`` (so no
``uuid.txt`` appears in the working directory) and is checked not to leave
threads or dispatchers behind.
"""
import contextlib
import threading
import time
import uuid

import pytest
import transaction
import ZODB
from ZODB.FileStorage import FileStorage

from plone.app.asyncjobs.engine import clock as engine_clock
from plone.app.asyncjobs.engine import configure
from plone.app.asyncjobs.engine import dispatcher as dispatcher_module
from plone.app.asyncjobs.engine import instanceuuid
from plone.app.asyncjobs.engine.agent import Agent
from plone.app.asyncjobs.engine.testing.clock import Clock
from plone.app.asyncjobs.engine.testing.postgres import PostgreSQLDatabase
from plone.app.asyncjobs.engine.testing.waiting import wait_for_poll
from plone.app.asyncjobs.engine.testing.zeo import ZEOServer
from plone.app.asyncjobs.engine.tests import jobs


POLL_INTERVAL = 0.1

#: Names of the threads the engine and these tests start.
OUR_THREADS = ("asyncjobs worker", "plone.app.asyncjobs reactor", "fires ")


@pytest.fixture(autouse=True)
def isolation(tmp_path, monkeypatch):
    """A private UUID file and clean job state; no leftover threads or dispatchers."""
    monkeypatch.setenv(instanceuuid.ENVIRONMENT_VARIABLE, str(tmp_path / "uuid.txt"))
    monkeypatch.setattr(instanceuuid, "_cached", None)
    jobs.reset()
    before = set(threading.enumerate())
    yield
    jobs.release_all()
    jobs.join_threads()
    engine_clock.set_time_source(None)
    leftover = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        leftover = [
            t for t in threading.enumerate()
            if t not in before and t.is_alive() and t.name.startswith(OUR_THREADS)
        ]
        if not leftover:
            break
        time.sleep(0.02)
    registered = dict(dispatcher_module._dispatchers)
    dispatcher_module._dispatchers.clear()
    jobs.reset()
    assert not leftover, f"threads left running: {leftover}"
    assert not registered, f"dispatchers left active: {registered}"


@pytest.fixture
def zeo(tmp_path):
    """A ZEO server process on a free port; stopped after the test."""
    with ZEOServer(tmp_path / "zeo") as server:
        yield server


@pytest.fixture
def db(request, tmp_path):
    """A database on a FileStorage in ``tmp_path``; parametrized
    indirectly, on any of :data:`.support.STORAGES`: a ZEO server process,
    or RelStorage on a new database of the local PostgreSQL server."""
    kind = getattr(request, "param", "FileStorage")
    with contextlib.ExitStack() as stack:
        if kind == "FileStorage":
            database = ZODB.DB(FileStorage(str(tmp_path / "Data.fs")))
        elif kind == "ZEO":
            database = stack.enter_context(ZEOServer(tmp_path / "zeo")).db()
        else:
            if not PostgreSQLDatabase.available():
                pytest.skip("PostgreSQL refuses connections on 127.0.0.1:5432")
            database = stack.enter_context(PostgreSQLDatabase()).db()
        yield database
        database.close()


@pytest.fixture
def connect(db):
    """Open connections with their own transaction managers; closed after the test."""
    opened = []

    def open_connection(database=None):
        manager = transaction.TransactionManager()
        connection = (database or db).open(transaction_manager=manager)
        opened.append(connection)
        return connection

    yield open_connection
    for connection in opened:
        connection.transaction_manager.abort()
        connection.close()


@pytest.fixture
def conn(connect):
    """The test's main connection."""
    return connect()


@pytest.fixture
def queues(db):
    """Install the default queue ``''`` and a queue ``'other'``."""
    configure.install_queues(db, ("", "other"))


@pytest.fixture
def queue(queues, conn):
    """The default queue, as seen by ``conn``."""
    return configure.get_queue(conn)


@pytest.fixture
def clock():
    """The engine's time source, frozen at the current time until advanced."""
    with Clock() as installed:
        jobs.clock = installed
        yield installed


@pytest.fixture
def start_dispatcher(db):
    """Start dispatchers on private reactor threads; they are always stopped."""
    started = []

    def start(wait=True, **options):
        options.setdefault("poll_interval", POLL_INTERVAL)
        options.setdefault("shutdown_grace", 5)
        started_dispatcher = configure.start(options.pop("db", db), **options)
        started.append(started_dispatcher)
        if wait:
            wait_for_poll(started_dispatcher)
        return started_dispatcher

    yield start
    jobs.release_all()
    for started_dispatcher in reversed(started):
        assert configure.stop(started_dispatcher), f"{started_dispatcher!r} did not stop"


@pytest.fixture
def dispatcher(queues, start_dispatcher):
    """A running dispatcher (poll interval 0.1 s, agent 'main' of size 3)."""
    return start_dispatcher()


@pytest.fixture
def record(queue, conn):
    """Make an activated dispatcher record with agents in ``queue`` (no threads)."""

    def make(uuid_=None, agents=(("main", 3),), target=None):
        target = target if target is not None else queue
        dispatcher_record = target.dispatchers.register(uuid_ or uuid.uuid4())
        dispatcher_record.activate()
        for name, size in agents:
            dispatcher_record[name] = Agent(size=size)
        conn.transaction_manager.commit()
        return dispatcher_record

    return make

