"""The ZEO and PostgreSQL fixtures start, share and stop real servers."""
import contextlib
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import psycopg2
import pytest

from plone.app.asyncjobs.engine.testing import zeo
from plone.app.asyncjobs.engine.testing.postgres import PostgreSQLDatabase
from plone.app.asyncjobs.engine.testing.zeo import ZEOServer
from plone.app.asyncjobs.engine.testing.zeo import ZEOStartError
from plone.app.asyncjobs.engine.testing.zeo import open_db


SUBPROCESS_TIMEOUT = 60

requires_postgresql = pytest.mark.skipif(
    not PostgreSQLDatabase.available(),
    reason="PostgreSQL refuses connections on 127.0.0.1:5432",
)

# Run by a child interpreter with a storage config as its argument.
WRITE_BLOB = textwrap.dedent("""
    import sys
    from ZODB.blob import Blob
    from plone.app.asyncjobs.engine.testing.zeo import open_db

    db = open_db(sys.argv[1])
    with db.transaction() as connection:
        connection.root()["blob"] = Blob(b"from a subprocess")
    db.close()
""")

WRITE_VALUE = textwrap.dedent("""
    import sys
    from plone.app.asyncjobs.engine.testing.zeo import open_db

    db = open_db(sys.argv[1])
    with db.transaction() as connection:
        connection.root()["value"] = "from a subprocess"
    db.close()
""")

START_AND_FORGET = textwrap.dedent("""
    import sys
    from plone.app.asyncjobs.engine.testing.zeo import ZEOServer

    server = ZEOServer(sys.argv[1])
    server.start()
    print(server.pid)
""")


def run_python(code, *args):
    """Run *code* in a child interpreter; return its standard output."""
    result = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def wait_for(predicate, timeout=10):
    """Poll *predicate* until it returns true; fail after *timeout* s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting: {predicate}"
        time.sleep(0.02)


def read(db, key):
    with db.transaction() as connection:
        return connection.root().get(key)


def write(db, key, value):
    with db.transaction() as connection:
        connection.root()[key] = value


def read_blob(db, key):
    with db.transaction() as connection:
        with connection.root()[key].open() as blob:
            return blob.read()


def is_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def database_exists(database):
    connection = psycopg2.connect(
        host=database.host,
        port=database.port,
        user=database.user,
        dbname="postgres",
    )
    with contextlib.closing(connection), connection.cursor() as cursor:
        cursor.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (database.name,)
        )
        return cursor.fetchone() is not None


@pytest.fixture
def closing():
    """A function registering a ``ZODB.DB`` to be closed after the test.

    Request it after the server fixture, so that databases close first.
    """
    with contextlib.ExitStack() as stack:
        yield lambda db: stack.enter_context(contextlib.closing(db))


@pytest.fixture
def zeo_server(tmp_path):
    with ZEOServer(tmp_path / "zeo") as server:
        yield server


@pytest.fixture
def postgres_database():
    with PostgreSQLDatabase() as database:
        yield database


def test_zeo_server_listens_on_a_loopback_port(zeo_server):
    host, port = zeo_server.address
    assert host == "127.0.0.1"
    assert port > 0
    assert is_alive(zeo_server.pid)
    assert f"listening on ('127.0.0.1', {port})" in (
        zeo_server.log_path.read_text()
    )


def test_two_clients_see_each_others_commits(zeo_server, closing):
    first = closing(zeo_server.db())
    second = closing(zeo_server.db())
    write(first, "first", 1)
    wait_for(lambda: read(second, "first") == 1)
    write(second, "second", 2)
    wait_for(lambda: read(first, "second") == 2)


def test_open_db_accepts_an_address_pair(zeo_server, closing):
    write(closing(zeo_server.db()), "value", 1)
    db = closing(open_db(list(zeo_server.address)))
    wait_for(lambda: read(db, "value") == 1)


def test_subprocess_opens_the_zeo_database_from_the_config(
    zeo_server, closing
):
    run_python(WRITE_BLOB, zeo_server.client_storage_config())
    db = closing(zeo_server.db())
    wait_for(lambda: read(db, "blob") is not None)
    assert read_blob(db, "blob") == b"from a subprocess"


def test_stop_ends_the_process_and_releases_the_port(zeo_server, closing):
    closing(zeo_server.db())
    pid, address = zeo_server.pid, zeo_server.address
    zeo_server.stop()
    assert zeo_server.pid is None
    assert not is_alive(pid)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(address).close()
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(address)
        listener.listen()
    zeo_server.stop()


def test_restart_keeps_address_data_and_clients(zeo_server, closing):
    db = closing(zeo_server.db())
    write(db, "kept", True)
    address = zeo_server.address
    zeo_server.stop()
    zeo_server.start()
    assert zeo_server.address == address
    wait_for(db.storage.is_connected)
    assert read(db, "kept") is True
    write(db, "after restart", True)


def test_start_takes_another_port_when_the_chosen_one_is_taken(
    tmp_path, monkeypatch
):
    # Bound but not listening, as if grabbed between the port choice and
    # the server's bind; it fails the bind without answering connects.
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        offered = [taken := squatter.getsockname()[1]]
        monkeypatch.setattr(
            zeo,
            "_free_port",
            lambda: offered.pop() if offered else free_port(),
        )
        with ZEOServer(tmp_path) as server:
            assert server.address[1] != taken
            assert "already in use" in server.log_path.read_text()


def test_failed_start_reports_the_log_tail(tmp_path):
    (tmp_path / "Data.fs").write_bytes(b"not a FileStorage")
    server = ZEOServer(tmp_path)
    with pytest.raises(ZEOStartError) as raised:
        server.start()
    message = str(raised.value)
    assert "exited with status 1" in message
    assert str(server.log_path) in message
    assert "FileStorageFormatError" in message
    assert server.pid is None


def test_start_gives_up_after_the_timeout(tmp_path):
    server = ZEOServer(tmp_path)
    with pytest.raises(ZEOStartError, match="did not accept clients in time"):
        server.start(timeout=0)
    assert server.pid is None


def test_forgotten_server_is_stopped_at_interpreter_exit(tmp_path):
    pid = int(run_python(START_AND_FORGET, str(tmp_path)))
    try:
        assert not is_alive(pid)
    finally:
        if is_alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_available_is_false_when_the_connection_is_refused():
    assert not PostgreSQLDatabase.available(port=free_port())


@requires_postgresql
def test_postgresql_database_is_created_and_dropped():
    database = PostgreSQLDatabase()
    database.create()
    try:
        assert database_exists(database)
        assert database.name in database.dsn
    finally:
        database.drop()
    assert not database_exists(database)
    database.drop()


@requires_postgresql
def test_relstorage_commits_are_visible_across_databases(
    postgres_database, closing
):
    first = closing(postgres_database.db())
    second = closing(postgres_database.db())
    assert not first.supportsUndo()  # history-free
    write(first, "first", 1)
    assert read(second, "first") == 1
    write(second, "second", 2)
    assert read(first, "second") == 2


@requires_postgresql
def test_subprocess_opens_the_relstorage_database_from_the_config(
    postgres_database, closing
):
    run_python(WRITE_VALUE, postgres_database.zconfig())
    assert read(closing(postgres_database.db()), "value") == (
        "from a subprocess"
    )


@requires_postgresql
def test_drop_terminates_connections_to_the_database(closing):
    database = PostgreSQLDatabase().create()
    db = closing(database.db())
    write(db, "value", 1)
    database.drop()
    assert not database_exists(database)
