"""Worker roles: who starts a dispatcher, when, and how it stops."""
import contextlib
import json
import signal
import sys
import types
import uuid

import pytest
import transaction
from plone.testing import zca
from ZODB.utils import u64
from zope.component import queryUtility
from zope.configuration import xmlconfig
from zope.event import notify
from zope.processlifetime import ProcessStarting

import plone.app.asyncjobs
from plone.app.asyncjobs import api as jobs_api
from plone.app.asyncjobs.engine import instanceuuid
from plone.app.asyncjobs.engine.dispatcher import POLL_INTERVAL
from plone.app.asyncjobs.engine.queue import KEY
from plone.app.asyncjobs.engine.testing.waiting import wait_for_poll
from plone.app.asyncjobs.engine.testing.waiting import wait_until
from plone.app.asyncjobs.interfaces import IWorkerRole
from plone.app.asyncjobs.monitor import databases as monitor_databases
from plone.app.asyncjobs.monitor.server import listening_address
from plone.app.asyncjobs.monitor.tests.client import ask
from plone.app.asyncjobs.testing import stop_dispatcher
from plone.app.asyncjobs.testing import wait_for_result
from plone.app.asyncjobs.tests import jobs
from plone.app.asyncjobs.worker import runtime
from plone.app.asyncjobs.worker.config import WorkerSettings
from plone.app.asyncjobs.worker.roles import MULTI_DB
from plone.app.asyncjobs.worker.roles import SINGLE_DB


FAST = WorkerSettings(poll_interval=0.05, shutdown_grace=2)


@pytest.fixture(autouse=True)
def no_runtime_left():
    """Check that no runtime runs after the test and that the signal
    handlers are back as they were."""
    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    yield
    left = runtime.current()
    runtime.stop()
    assert left is None, "the test left a runtime running"
    assert {s: signal.getsignal(s) for s in handlers} == handlers


@pytest.fixture
def stops_runtime():
    """Stop the runtime a test started.  Request it last: fixtures are torn
    down in reverse order, and the runtime must stop before its database
    is closed."""
    yield
    runtime.stop()


@pytest.fixture
def uuid_file(tmp_path, monkeypatch):
    """A ZC_ASYNC_UUID file for this test (the engine caches the UUID)."""
    path = tmp_path / "worker-uuid.txt"
    monkeypatch.setenv(instanceuuid.ENVIRONMENT_VARIABLE, str(path))
    monkeypatch.setattr(instanceuuid, "_cached", None)
    return path


@pytest.fixture
def load_zcml(integration):
    """Load a role file of the package into a throw-away registry."""
    zca.pushGlobalRegistry()
    context = zca.stackConfigurationContext(integration["configurationContext"])

    def load(filename):
        xmlconfig.file(filename, package=plone.app.asyncjobs, context=context)

    yield load
    zca.popGlobalRegistry()


@pytest.fixture
def product_config(monkeypatch):
    """Set <product-config> sections of zope.conf for the test."""
    from App.config import getConfiguration

    config = getConfiguration()

    def set_sections(**sections):
        monkeypatch.setattr(config, "product_config", sections, raising=False)

    set_sections()
    return set_sections


def test_configure_zcml_starts_no_worker(portal, uuid_file, stops_runtime):
    assert queryUtility(IWorkerRole) is None
    notify(ProcessStarting())
    assert runtime.current() is None
    assert not uuid_file.exists()


@pytest.fixture
def freezes(monkeypatch):
    """Record the worker's calls of freeze_start_up instead of freezing the
    heap of the test process."""
    calls = []
    monkeypatch.setattr(runtime, "freeze_start_up", lambda: calls.append(True))
    return calls


def test_single_db_zcml_starts_a_dispatcher_on_process_starting(
        portal, integration, uuid_file, load_zcml, freezes, stops_runtime):
    load_zcml("single_db.zcml")
    assert queryUtility(IWorkerRole) is SINGLE_DB
    assert runtime.current() is None, "loading the ZCML alone starts nothing"
    stop_dispatcher(integration["asyncjobsDispatcher"])

    notify(ProcessStarting())

    started = runtime.current()
    dispatcher = started.dispatcher
    assert str(dispatcher.uuid) == uuid_file.read_text().splitlines()[0]
    assert dispatcher.poll_interval == POLL_INTERVAL
    assert signal.getsignal(signal.SIGTERM) == started._on_signal
    assert freezes == [True]
    job = jobs_api.queue_job(jobs.add, portal, 2, 3)
    assert wait_for_result(job) == 5
    assert dispatcher.job_info(u64(job._p_oid))["completed"]

    runtime.stop()
    assert not started.reactor_thread.running
    transaction.begin()
    record = jobs_api.get_queue(context=portal).dispatchers[dispatcher.uuid]
    assert not record.activated


def test_gc_freeze_off_leaves_the_collector_alone(
        portal, integration, uuid_file, load_zcml, freezes, monkeypatch, stops_runtime):
    load_zcml("single_db.zcml")
    stop_dispatcher(integration["asyncjobsDispatcher"])
    monkeypatch.setattr(runtime, "worker_settings",
                        lambda: WorkerSettings.from_section({"gc-freeze": "off"}))
    notify(ProcessStarting())
    assert runtime.current() is not None
    assert freezes == []


def test_zconsole_scripts_do_not_start_the_worker(
        portal, uuid_file, load_zcml, monkeypatch, stops_runtime):
    load_zcml("single_db.zcml")
    monkeypatch.setitem(sys.modules, "Zope2.utilities.zconsole",
                        types.ModuleType("Zope2.utilities.zconsole"))
    notify(ProcessStarting())
    assert runtime.current() is None


def test_multi_db_zcml_registers_the_multi_db_role(portal, load_zcml):
    load_zcml("multi_db.zcml")
    assert queryUtility(IWorkerRole) is MULTI_DB
    assert MULTI_DB.queues_database == "async"


def test_the_monitor_starts_in_any_process_that_configures_it(
        portal, product_config, stops_runtime):
    product_config(**{"zc.z3monitor": {"bind": "127.0.0.1:0"}})
    notify(ProcessStarting())
    started = runtime.current()
    assert started.dispatcher is None
    address = listening_address(started.monitor_port)
    assert "dbinfo" in ask(address, "help\n")
    assert "unnamed" in monitor_databases.databases()
    assert "unnamed" in json.loads(ask(address, "dbinfo -\n"))
    runtime.stop()
    assert "unnamed" not in monitor_databases.databases()


def test_worker_and_monitor_share_the_private_reactor(
        portal, uuid_file, load_zcml, product_config, stops_runtime):
    load_zcml("single_db.zcml")
    product_config(**{
        "zc.z3monitor": {"bind": "127.0.0.1:0"},
        "plone.app.asyncjobs": {"poll-interval": "0.05", "agent-size": "2"},
    })
    notify(ProcessStarting())
    started = runtime.current()
    assert started.dispatcher.reactor is started.reactor_thread.reactor
    assert started.monitor_port.reactor is started.reactor_thread.reactor
    assert started.dispatcher.poll_interval == 0.05
    address = listening_address(started.monitor_port)
    assert ask(address, "monitor\n")
    wait_for_poll(started.dispatcher)
    assert json.loads(ask(address, "async status\n"))["status"] == "RUNNING"
    assert str(started.dispatcher.uuid) in ask(address, "asyncdb UUIDs\n")


def test_sigterm_stops_the_worker_then_exits(integration, portal, stops_runtime):
    started = runtime.start(integration["zodbDB"], role=SINGLE_DB, settings=FAST,
                            uuid=uuid.uuid4())
    wait_for_poll(started.dispatcher)
    with pytest.raises(SystemExit) as exit_info:
        signal.raise_signal(signal.SIGTERM)
    assert exit_info.value.code == 0
    assert not started.running
    assert not started.reactor_thread.running
    assert started.dispatcher.activated is False


def test_sigint_stops_the_worker_then_calls_the_previous_handler(
        integration, portal, monkeypatch, stops_runtime):
    calls = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: calls.append(signum))
    try:
        started = runtime.start(integration["zodbDB"], role=SINGLE_DB, settings=FAST,
                                uuid=uuid.uuid4())
        signal.raise_signal(signal.SIGINT)
        wait_until(lambda: calls, seconds=5)
        assert calls == [signal.SIGINT]
        assert not started.running
    finally:
        signal.signal(signal.SIGINT, previous)


def test_sigint_with_the_default_handler_raises_keyboard_interrupt(
        integration, portal, stops_runtime):
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    started = runtime.start(integration["zodbDB"], role=SINGLE_DB, settings=FAST,
                            uuid=uuid.uuid4())
    with pytest.raises(KeyboardInterrupt):
        signal.raise_signal(signal.SIGINT)
    assert not started.running


def test_default_quota_and_agent_size_are_applied(integration, portal, stops_runtime):
    dispatcher_uuid = uuid.uuid4()
    settings = WorkerSettings.from_section({
        "poll-interval": "0.05", "agent-size": "2", "default-quota-size": "2",
        "queues": "reports mail", "default-timeout": "60", "timeout-grace": "5",
    })
    started = runtime.start(integration["zodbDB"], role=SINGLE_DB, settings=settings,
                            uuid=dispatcher_uuid, install_signal_handlers=False)
    wait_for_poll(started.dispatcher, count=2)
    runtime.stop()
    transaction.begin()
    queues = jobs_api.get_queues()
    assert sorted(queues) == ["", "mail", "reports"]
    for queue in queues.values():
        assert queue.quotas["default"].size == 2
        assert queue.dispatchers[dispatcher_uuid]["main"].size == 2
        assert (queue.default_timeout, queue.timeout_grace) == (60, 5)

    settings = WorkerSettings.from_section(
        {"poll-interval": "0.05", "agent-size": "1", "default-quota-size": "1"})
    runtime.start(integration["zodbDB"], role=SINGLE_DB, settings=settings,
                  uuid=dispatcher_uuid, install_signal_handlers=False)
    runtime.stop()
    transaction.begin()
    assert queues[""].quotas["default"].size == 1
    assert queues[""].dispatchers[dispatcher_uuid]["main"].size == 1
    assert (queues[""].default_timeout, queues[""].timeout_grace) == (60, 5)  # kept


def test_worker_settings_from_zope_conf():
    assert WorkerSettings.from_section({}) == WorkerSettings()
    settings = WorkerSettings.from_section({
        "poll-interval": "0.5", "agent-size": "4", "default-quota-size": "1",
        "shutdown-grace": "3", "queues": "a b",
    })
    assert settings.poll_interval == 0.5
    assert settings.agent_size == 4 and settings.agent_size_configured
    assert settings.default_quota_size == 1
    assert settings.shutdown_grace == 3
    assert settings.queue_names == ("", "a", "b")
    with pytest.raises(ValueError, match="agent-size must be a whole number"):
        WorkerSettings.from_section({"agent-size": "many"})
    with pytest.raises(ValueError, match="agent-size must be at most 100"):
        WorkerSettings.from_section({"agent-size": "1000000000"})
    with pytest.raises(ValueError, match="poll-interval must be at least"):
        WorkerSettings.from_section({"poll-interval": "0"})
    assert WorkerSettings.from_section({"default-timeout": "0"}).default_timeout == 0
    with pytest.raises(ValueError, match="timeout-grace must be at least 0"):
        WorkerSettings.from_section({"timeout-grace": "-1"})
    for key in ("poll-interval", "shutdown-grace"):  # NaN passed every check
        with pytest.raises(ValueError, match=f"{key} must be a finite number, got 'nan'"):
            WorkerSettings.from_section({key: "nan"})
    assert settings.gc_freeze
    assert not WorkerSettings.from_section({"gc-freeze": " Off "}).gc_freeze
    with pytest.raises(ValueError, match="gc-freeze must be on or off, got 'no'"):
        WorkerSettings.from_section({"gc-freeze": "no"})
    with pytest.raises(ValueError, match="unknown keys \\['pol-interval'\\]"):
        WorkerSettings.from_section({"pol-interval": "1"})


# -- multi-database layout ------------------------------------------------------


@contextlib.contextmanager
def joined_databases(integration, other_name):
    """Yield a main database (the test fixture's content) joined to an empty
    one named ``other_name``, as zope.conf joins its <zodb_db> sections."""
    from ZODB.DB import DB
    from ZODB.DemoStorage import DemoStorage

    databases = {}
    main = DB(DemoStorage(name="main", base=integration["zodbDB"].storage),
              database_name="main", databases=databases)
    other = DB(DemoStorage(name=other_name), database_name=other_name, databases=databases)
    try:
        yield main
    finally:
        main.close()
        other.close()


@pytest.fixture
def multi_db(integration):
    """The main database and the ``async`` one, where the queues go."""
    with joined_databases(integration, "async") as main:
        yield main


@pytest.fixture
def main_site(multi_db, portal):
    """The Plone site, reached through a connection to the main database."""
    from Testing.makerequest import makerequest
    from zope.component.hooks import setSite

    manager = transaction.TransactionManager()
    connection = multi_db.open(transaction_manager=manager)
    site = makerequest(connection.root()["Application"]).plone
    setSite(site)
    yield site
    setSite(portal)
    manager.abort()
    connection.close()


def test_multi_db_queues_are_created_in_the_async_database(main_site):
    connection = main_site._p_jar
    job = jobs_api.queue_job(jobs.add, main_site, 1)
    async_root = connection.get_connection("async").root()
    assert job.queue.parent is async_root[KEY]
    assert connection.root()[KEY] is async_root[KEY]
    connection.transaction_manager.commit()
    assert job._p_jar.db().database_name == "async"


def test_multi_db_worker_runs_jobs_in_the_main_database(multi_db, main_site, stops_runtime):
    started = runtime.start(multi_db, role=MULTI_DB, settings=FAST, uuid=uuid.uuid4(),
                            install_signal_handlers=False)
    assert started.dispatcher.db is multi_db.databases["async"]
    manager = main_site._p_jar.transaction_manager
    manager.begin()
    job = jobs_api.queue_job(jobs.describe, main_site)
    assert job.queue is jobs_api.get_queues(main_site)[""]
    manager.commit()
    result = wait_for_result(job)
    assert result["site"] == "/plone"
    assert result["thread"].startswith("asyncjobs worker")
    assert job._p_jar.db() is multi_db.databases["async"]
    assert set(monitor_databases.databases()) >= {"main", "async"}


@pytest.fixture
def mounted_db(integration):
    """The main database and a ``sites`` one, standing for a database
    mounted in zope.conf."""
    with joined_databases(integration, "sites") as main:
        yield main


@pytest.fixture
def mounted_site(mounted_db, portal):
    """A copy of the Plone site at ``/mnt/plone``, stored in the ``sites``
    database, reached through the main one."""
    from AccessControl.SecurityManagement import newSecurityManager
    from OFS.Folder import Folder
    from Testing.makerequest import makerequest
    from zope.component.hooks import setSite

    manager = transaction.TransactionManager()
    connection = mounted_db.open(transaction_manager=manager)
    app = makerequest(connection.root()["Application"])
    newSecurityManager(None, app.acl_users.getUserById("admin").__of__(app.acl_users))
    mount = Folder("mnt")
    connection.get_connection("sites").add(mount)
    app._setObject("mnt", mount)
    manager.commit()
    app.mnt.manage_pasteObjects(app.manage_copyObjects(["plone"]))
    manager.commit()
    site = app.mnt.plone
    setSite(site)
    yield site
    setSite(portal)
    manager.abort()
    connection.close()


def test_jobs_of_a_site_in_a_mounted_database_run(mounted_db, mounted_site, stops_runtime):
    # The queues were looked up in, and created in, the database the site
    # is stored in, where no worker looks: the job stayed pending for ever.
    assert mounted_site._p_jar.db().database_name == "sites"
    runtime.start(mounted_db, role=SINGLE_DB, settings=FAST, uuid=uuid.uuid4(),
                  install_signal_handlers=False)
    manager = mounted_site._p_jar.transaction_manager
    manager.begin()
    job = jobs_api.queue_job(jobs.describe, mounted_site)
    manager.commit()
    assert job._p_jar.db() is mounted_db
    assert wait_for_result(job)["site"] == "/mnt/plone"


def test_multi_db_role_without_an_async_database_fails_clearly(
        integration, portal, stops_runtime):
    with pytest.raises(LookupError, match="no database named 'async'"):
        runtime.start(integration["zodbDB"], role=MULTI_DB, settings=FAST,
                      uuid=uuid.uuid4(), install_signal_handlers=False)
    assert runtime.current() is None
    assert "unnamed" not in monitor_databases.databases()


def test_a_worker_without_zc_async_uuid_warns(integration, portal, tmp_path, monkeypatch,
                                              caplog, stops_runtime):
    monkeypatch.delenv(instanceuuid.ENVIRONMENT_VARIABLE, raising=False)
    monkeypatch.setattr(instanceuuid, "_cached", None)
    monkeypatch.chdir(tmp_path)
    started = runtime.start(integration["zodbDB"], role=SINGLE_DB, settings=FAST,
                            install_signal_handlers=False)
    assert "ZC_ASYNC_UUID is not set" in caplog.text
    assert (tmp_path / "uuid.txt").read_text().startswith(str(started.dispatcher.uuid))
