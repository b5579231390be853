"""The process and database commands, asked over real TCP connections."""

import json
import os

import pytest
import ZEO
import ZODB
from persistent.mapping import PersistentMapping
from ZODB.ActivityMonitor import ActivityMonitor

from plone.app.asyncjobs.monitor import databases
from plone.app.asyncjobs.monitor.commands import DatabaseInfo
from plone.app.asyncjobs.monitor.commands import monitor
from plone.app.asyncjobs.monitor.commands import zeostatus
from plone.app.asyncjobs.monitor.tests.client import InteractiveClient
from plone.app.asyncjobs.monitor.tests.client import ask


@pytest.fixture
def address(serve):
    """A monitor server with fresh command plugins."""
    return serve(
        {"monitor": monitor, "dbinfo": DatabaseInfo(), "zeostatus": zeostatus}
    )


@pytest.fixture
def register():
    """Register databases for the test; unregister and close them after."""
    registered = []

    def register(name, db):
        databases.register_database(name, db)
        registered.append((name, db))
        return db

    yield register
    for name, db in registered:
        databases.unregister_database(name)
        db.close()


def ask_json(address, line):
    return json.loads(ask(address, line + "\n"))


def create_data(db):
    """Commit a mapping at the root, in a connection closed after.

    ZODB's activity monitor counts stores when the connection closes.
    """
    with db.transaction() as connection:
        connection.root()["data"] = PersistentMapping()


def change_data(db, value):
    """Change the mapping: one store, counted when the connection closes."""
    with db.transaction() as connection:
        connection.root()["data"]["value"] = value


# -- monitor --------------------------------------------------------------------


def test_monitor_shows_the_process(address):
    with InteractiveClient(address):  # a second, idle client
        info = ask_json(address, "monitor")
    assert sorted(info) == [
        "gc objects",
        "monitor connections",
        "pid",
        "resident memory kB",
        "threads",
        "uptime seconds",
        "virtual memory kB",
    ]
    assert info["pid"] == os.getpid()
    assert info["monitor connections"] == 2
    assert info["threads"] >= 3  # this one, the reactor's, a pool thread
    assert 0 < info["resident memory kB"] <= info["virtual memory kB"]
    assert info["uptime seconds"] > 0
    assert info["gc objects"] > 1000


def test_monitor_output_is_indented_json_with_sorted_keys(address):
    output = ask(address, "monitor\n")
    assert output.startswith('{\n    "gc objects": ')
    assert output.endswith("}\n")


# -- dbinfo ---------------------------------------------------------------------


def test_dbinfo_reports_each_database(address, register):
    main = register("main", ZODB.DB(None))
    register("catalog", ZODB.DB(None, cache_size=100))
    create_data(main)
    with main.transaction():  # an open connection has a cache
        info = ask_json(address, "dbinfo")
    assert list(info) == ["catalog", "main"]
    report = info["main"]
    assert report["objects"] == 2  # the root and the mapping
    assert report["size bytes"] > 0
    assert report["cache"] == {
        "connections": 1,
        "objects": report["cache"]["objects"],
        "non-ghost objects": report["cache"]["non-ghost objects"],
        "target objects per connection": 400,
        "target bytes per connection": 0,
    }
    assert info["catalog"]["cache"]["target objects per connection"] == 100
    assert report["activity"]["stores"] > 0
    assert report["activity"]["connections"] == 1
    assert report["activity"]["seconds"] == pytest.approx(3600, abs=1)


def test_dbinfo_counts_activity_since_the_previous_call(address, register):
    db = register("main", ZODB.DB(None))
    create_data(db)
    assert ask_json(address, "dbinfo main")["main"]["activity"]["stores"] > 0
    activity = ask_json(address, "dbinfo main")["main"]["activity"]
    assert activity["stores"] == 0
    assert activity["seconds"] < 60
    change_data(db, 1)
    change_data(db, 2)
    assert ask_json(address, "dbinfo")["main"]["activity"]["stores"] == 2


def test_dbinfo_counts_activity_over_given_seconds(address, register):
    db = register("main", ZODB.DB(None))
    create_data(db)
    change_data(db, 1)
    ask(address, "dbinfo\n")
    activity = ask_json(address, "dbinfo main 600")["main"]["activity"]
    assert activity["seconds"] == 600
    assert activity["connections"] == 2
    # More than the activity monitor keeps is cut to its history.
    db.setActivityMonitor(ActivityMonitor(history_length=60))
    assert ask_json(address, "dbinfo - 600")["main"]["activity"]["seconds"] == 60


def test_dbinfo_rejects_bad_arguments(address, register):
    register("main", ZODB.DB(None))
    assert ask(address, "dbinfo nosuch\n") == (
        "Error: No database is registered as 'nosuch' (registered: main)\n"
    )
    for seconds in ("soon", "0", "-5", "nan", "inf"):
        assert ask(address, f"dbinfo main {seconds}\n") == (
            f"Error: SECONDS must be a positive number, not '{seconds}'\n"
        )
    assert ask(address, "dbinfo main 1 2\n").startswith(
        "Bad arguments for 'dbinfo': too many positional arguments."
    )


def test_dbinfo_without_databases(address):
    assert ask_json(address, "dbinfo") == {}
    assert ask(address, "dbinfo main\n") == (
        "Error: No database is registered as 'main' (registered: none)\n"
    )


# -- zeostatus ------------------------------------------------------------------


def test_zeostatus_of_a_database_that_is_not_a_zeo_client(address, register):
    register("main", ZODB.DB(None))
    assert ask_json(address, "zeostatus") == {"main": "not a ZEO client"}
    assert ask_json(address, "zeostatus main") == {"main": "not a ZEO client"}
    assert ask(address, "zeostatus other\n").startswith(
        "Error: No database is registered as 'other'"
    )


def test_zeostatus_of_a_zeo_client(address, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the ZEO test server writes a file there
    server_address, stop_server = ZEO.server()
    try:
        db = ZEO.DB(server_address)
        try:
            databases.register_database("main", db)
            create_data(db)
            status = ask_json(address, "zeostatus")["main"]
            last_transaction = db.lastTransaction()
        finally:
            databases.unregister_database("main")
            db.close()
    finally:
        stop_server()
    assert status["connected"] is True
    assert status["server address"] == "{}:{}".format(*server_address)
    assert status["last transaction"] == last_transaction.hex()
    assert status["last transaction time"].endswith("Z")


# -- the database registry --------------------------------------------------------


def test_registering_adds_an_activity_monitor_only_where_missing(register):
    bare = register("bare", ZODB.DB(None))
    assert isinstance(bare.getActivityMonitor(), ActivityMonitor)
    own_monitor = ActivityMonitor(history_length=10)
    monitored = ZODB.DB(None)
    monitored.setActivityMonitor(own_monitor)
    register("monitored", monitored)
    assert monitored.getActivityMonitor() is own_monitor


def test_registry_snapshot_and_unregister(register):
    first = register("first", ZODB.DB(None))
    snapshot = databases.databases()
    register("second", ZODB.DB(None))
    assert snapshot == {"first": first}
    assert list(databases.databases()) == ["first", "second"]
    databases.unregister_database("second")
    databases.unregister_database("never registered")
    assert databases.databases() == {"first": first}


@pytest.mark.parametrize("name", ["", "-", "two words", " main", "main\n"])
def test_registry_rejects_names_a_command_line_cannot_hold(name):
    with pytest.raises(ValueError, match="Invalid monitor database name"):
        databases.register_database(name, None)
