"""A fresh PostgreSQL database holding a history-free RelStorage, for tests.

It lives on an already running server, by default on 127.0.0.1:5432,
which must let the user log in without a password.  Typical use in a
pytest fixture::

    @pytest.fixture
    def postgres_database():
        if not PostgreSQLDatabase.available():
            pytest.skip("PostgreSQL refuses connections on 127.0.0.1:5432")
        with PostgreSQLDatabase() as database:
            yield database

Worker subprocesses receive ``database.zconfig()`` and open it with
``plone.app.asyncjobs.engine.testing.zeo.open_db``.
"""
import atexit
import contextlib
import getpass
import os
import socket
import uuid

import psycopg2
import ZODB
from psycopg2 import sql
from relstorage.adapters.postgresql import PostgreSQLAdapter
from relstorage.options import Options
from relstorage.storage import RelStorage


HOST = "127.0.0.1"
PORT = 5432

# Databases that exist on a stock server or on ours, to issue CREATE
# DATABASE from; tried in this order.
_MAINTENANCE_DATABASES = ("postgres", "test")
_CONNECT_TIMEOUT = 10


class PostgreSQLDatabase:
    """A uniquely named database, created by :meth:`create`.

    *user* defaults to ``$PGUSER``; without it the current OS user is
    tried first and then ``postgres``.  The instance is a context manager:
    entering creates the database and returns the instance, leaving drops
    it.  A created database is also dropped at interpreter exit.
    """

    def __init__(self, *, host=HOST, port=PORT, user=None):
        self.host = host
        self.port = port
        self.name = f"asyncjobs_test_{uuid.uuid4().hex[:12]}"
        self.user = user or os.environ.get("PGUSER")
        self._created = False

    @classmethod
    def available(cls, host=HOST, port=PORT):
        """Return whether a server listens on *host* and *port*.

        Only a refused connection counts as unavailable: other network
        errors propagate, and a server that listens but rejects the login
        makes :meth:`create` fail, so misconfiguration is not mistaken for
        an absent server.
        """
        try:
            socket.create_connection((host, port), _CONNECT_TIMEOUT).close()
        except ConnectionRefusedError:
            return False
        return True

    @property
    def dsn(self):
        """The libpq connection string of the database.

        Raises ``RuntimeError`` unless the database has been created.
        """
        if not self._created:
            raise RuntimeError(f"database {self.name} does not exist")
        return psycopg2.extensions.make_dsn(
            host=self.host, port=self.port, user=self.user, dbname=self.name
        )

    def create(self):
        """Create the database with an empty RelStorage; return ``self``.

        The schema and the ZODB root object exist on return, so processes
        opening the database concurrently afterwards do not conflict
        creating them.  Raises ``psycopg2.OperationalError`` if no
        maintenance database accepts the login.
        """
        if self._created:
            raise RuntimeError(f"database {self.name} already exists")
        with contextlib.closing(self._admin_connection()) as connection:
            with connection.cursor() as cursor:
                cursor.execute(
                    sql.SQL("CREATE DATABASE {}").format(
                        sql.Identifier(self.name)
                    )
                )
        self._created = True
        atexit.register(self.drop)
        try:
            self.db().close()
        except BaseException:
            self.drop()
            raise
        return self

    def drop(self):
        """Drop the database, terminating every connection to it first.

        Connections of this process break too, so close databases opened
        on it first where possible.  Dropping a database that was never
        created, or that was dropped already, does nothing.
        """
        if not self._created:
            return
        atexit.unregister(self.drop)
        with contextlib.closing(self._admin_connection()) as connection:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = %s AND pid <> pg_backend_pid()",
                    (self.name,),
                )
                cursor.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {}").format(
                        sql.Identifier(self.name)
                    )
                )
        self._created = False

    def relstorage(self, **kw):
        """Return a new history-free ``RelStorage`` on the database.

        Keyword arguments are ``relstorage.options.Options``, except
        ``keep_history``.
        """
        options = Options(keep_history=False, **kw)
        adapter = PostgreSQLAdapter(dsn=self.dsn, options=options)
        return RelStorage(adapter, options=options)

    def db(self, **kw):
        """Return a new ``ZODB.DB`` over :meth:`relstorage`.

        Keyword arguments are passed to ``ZODB.DB``.  The caller must close
        the database, which closes its storage.
        """
        return ZODB.DB(self.relstorage(), **kw)

    def zconfig(self, port=None):
        """Return a ZConfig storage section equivalent to :meth:`relstorage`.

        The string is meant for ``open_db`` or
        ``ZODB.config.storageFromString`` in other processes.  *port*
        replaces the server's port (to go through a proxy, say).
        """
        dsn = self.dsn if port is None else psycopg2.extensions.make_dsn(self.dsn, port=port)
        dsn = dsn.replace("$", "$$")  # ZConfig substitutes on "$".
        return (
            "%import relstorage\n"
            "<relstorage>\n"
            "  keep-history false\n"
            "  <postgresql>\n"
            f"    dsn {dsn}\n"
            "  </postgresql>\n"
            "</relstorage>\n"
        )

    def __enter__(self):
        return self.create()

    def __exit__(self, *exc_info):
        self.drop()

    def _admin_connection(self):
        """Connect to a maintenance database, settling ``self.user``."""
        users = [self.user] if self.user else [getpass.getuser(), "postgres"]
        failures = []
        for user in users:
            for dbname in _MAINTENANCE_DATABASES:
                try:
                    connection = psycopg2.connect(
                        host=self.host,
                        port=self.port,
                        user=user,
                        dbname=dbname,
                        connect_timeout=_CONNECT_TIMEOUT,
                    )
                except psycopg2.OperationalError as error:
                    failures.append(f"{user}@{dbname}: {error}".strip())
                    continue
                # CREATE and DROP DATABASE refuse to run in a transaction.
                connection.autocommit = True
                self.user = user
                return connection
        raise psycopg2.OperationalError(
            f"cannot connect to {self.host}:{self.port}:\n"
            + "\n".join(failures)
        )
