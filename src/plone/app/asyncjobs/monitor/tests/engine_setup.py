"""A real worker for the job command tests: database, dispatcher, jobs.

`worker` starts an engine dispatcher (poll interval 0.1 s) on a FileStorage,
queues four jobs -- one succeeding, one failing, one running until the test
ends, one scheduled an hour ahead (and another, two hours ahead, in queue
"other") -- and waits until the first two completed and the third runs.
`fake_records` adds the records of three other dispatchers to the default
queue: ALIVE (activated, pinged just now), DEAD (activated, silent for ten
minutes, holding one assigned job) and OFF (deactivated).

The live dispatcher checks on its *next* activated sibling by UUID order
only, and its UUID (THIS) sorts before ALIVE, ALIVE before DEAD: so DEAD
stays dead, and listed as such, for as long as a test runs.
"""

import json
import threading
import uuid
from datetime import timedelta

import pytest
import transaction
import ZODB
from ZODB.FileStorage import FileStorage

from plone.app.asyncjobs.engine import configure
from plone.app.asyncjobs.engine import instanceuuid
from plone.app.asyncjobs.engine.agent import Agent
from plone.app.asyncjobs.engine.clock import utcnow
from plone.app.asyncjobs.engine.ids import object_id
from plone.app.asyncjobs.engine.job import Job
from plone.app.asyncjobs.engine.testing.waiting import wait_for_poll
from plone.app.asyncjobs.engine.testing.waiting import wait_for_result
from plone.app.asyncjobs.engine.testing.waiting import wait_for_start
from plone.app.asyncjobs.engine.transactions import retry_conflicts
from plone.app.asyncjobs.monitor.server import MonitorThread
from plone.app.asyncjobs.monitor.tests.client import ask


THIS = uuid.UUID(int=1)
ALIVE = uuid.UUID(int=2)
DEAD = uuid.UUID(int=3)
OFF = uuid.UUID(int=4)

#: Set at the end of each test: lets `wait_for_release` return.
RELEASE = threading.Event()


# -- job functions (module level: workers load them by name) --------------------


def succeed(value):
    return value * 2


def fail(message):
    raise ValueError(message)


def wait_for_release():
    if not RELEASE.wait(30):
        raise TimeoutError("the test never released the job")
    return "released"


def scheduled():
    return "ran"


def held():
    return "never runs: a dead dispatcher holds it"


def only_scheduled(job):
    """An agent filter: the `scheduled` jobs only."""
    return job.callable is scheduled


def only_held(job):
    return job.callable is held


def choose_nothing(agent):
    """An agent chooser that never takes a job."""
    return None


class SlowRepr:
    """A job argument whose repr waits until the test releases it.

    It makes a monitor command that describes its job as slow as the test
    wants.  (The events are class attributes, so they are not stored.)
    """

    entered = threading.Event()
    release = threading.Event()

    def __repr__(self):
        SlowRepr.entered.set()
        if not SlowRepr.release.wait(30):
            raise TimeoutError("the test never released the repr")
        return "<slow argument>"


class BadRepr:
    """A job argument whose repr raises."""

    def __repr__(self):
        raise RuntimeError("repr exploded")


# -- helpers ------------------------------------------------------------------------


def ask_json(address, line):
    output = ask(address, line + "\n")
    try:
        return json.loads(output)
    except ValueError:
        raise AssertionError(f"{line!r} answered, not in JSON: {output!r}") from None


def job_id(job):
    return list(object_id(job))


class Worker:
    """What `worker` set up; attributes named as in the module docstring."""

    def __init__(self, db, dispatcher, connection, manager):
        self.db = db
        self.dispatcher = dispatcher
        self.connection = connection
        self.manager = manager
        self.jobs = {}

    def in_transaction(self, work, description="test set-up"):
        """Run `work(root)` and commit, retrying conflicts with the workers."""
        return retry_conflicts(lambda: work(self.connection.root()), self.manager, description)

    def queue(self, name=""):
        return self.connection.root()["plone.app.asyncjobs"][name]

    def refresh(self):
        self.manager.begin()


def stop_dispatcher(dispatcher):
    RELEASE.set()
    SlowRepr.release.set()
    assert configure.stop(dispatcher)


@pytest.fixture
def worker(tmp_path, monkeypatch):
    uuid_file = tmp_path / "uuid.txt"
    uuid_file.write_text(f"{THIS}\n")
    monkeypatch.setenv(instanceuuid.ENVIRONMENT_VARIABLE, str(uuid_file))
    monkeypatch.setattr(instanceuuid, "_cached", None)
    RELEASE.clear()
    db = ZODB.DB(FileStorage(str(tmp_path / "Data.fs")))
    dispatcher = configure.start(db, poll_interval=0.1, queue_names=("", "other"))
    manager = transaction.TransactionManager()
    connection = db.open(transaction_manager=manager)
    world = Worker(db, dispatcher, connection, manager)
    try:
        wait_for_poll(dispatcher)
        now = utcnow()

        def queue_jobs(root):
            queues = root["plone.app.asyncjobs"]
            return {
                "succeed": queues[""].put(Job(succeed, 21)),
                "fail": queues[""].put(Job(fail, "as planned")),
                "long": queues[""].put(Job(wait_for_release)),
                "scheduled": queues[""].put(Job(scheduled), begin_after=now + timedelta(hours=1)),
                "other": queues["other"].put(Job(scheduled), begin_after=now + timedelta(hours=2)),
            }

        world.jobs.update(world.in_transaction(queue_jobs))
        wait_for_result(world.jobs["succeed"])
        wait_for_result(world.jobs["fail"])
        wait_for_start(world.jobs["long"])
        yield world
    finally:
        if dispatcher.activated:
            stop_dispatcher(dispatcher)
        manager.abort()
        connection.close()
        db.close()


@pytest.fixture
def fake_records(worker):
    """Add the ALIVE, DEAD and OFF records; return the job DEAD holds."""

    def add_records(root):
        queue = root["plone.app.asyncjobs"][""]
        now = utcnow()
        alive = queue.dispatchers.register(ALIVE)
        alive.activate(process=("otherhost", 4242))
        alive.ping_death_interval = timedelta(hours=1)
        alive["picky"] = Agent(filter=only_scheduled, size=1)
        dead = queue.dispatchers.register(DEAD)
        dead.activate(process=("lost", 99))
        dead["main"] = Agent(filter=only_held, size=2)
        dead["legacy"] = Agent(chooser=choose_nothing, size=1)
        job = queue.put(Job(held))
        assert dead["main"].claim_job() is job
        dead.activated = dead.last_ping = now - timedelta(minutes=10)
        off = queue.dispatchers.register(OFF)
        off.activate()
        off.deactivate()
        return job

    job = worker.in_transaction(add_records, "adding fake dispatcher records")
    worker.jobs["held"] = job
    return job


@pytest.fixture
def monitor_thread():
    """Start a MonitorThread serving the given plugins; stop it after."""
    started = []

    def start(plugins):
        monitor = MonitorThread(("127.0.0.1", 0), plugins)
        started.append(monitor)
        return monitor.start()

    yield start
    for monitor in started:
        monitor.stop()
