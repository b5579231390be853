"""A real ZEO server in a subprocess, for tests that span several processes.

Typical use in a pytest fixture::

    @pytest.fixture
    def zeo_server(tmp_path):
        with ZEOServer(tmp_path) as server:
            yield server

The test process opens the database with ``server.db()``; worker
subprocesses receive ``server.client_storage_config()`` (a string) and
open the same database with :func:`open_db`.
"""
import atexit
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import ZODB
import ZODB.config
from ZEO.ClientStorage import ClientStorage
from ZEO.Exceptions import ClientDisconnected


HOST = "127.0.0.1"

#: Seconds a client waits for the server to (re)appear before giving up.
CLIENT_WAIT_TIMEOUT = 30

_POLL_INTERVAL = 0.02
_BIND_ATTEMPTS = 5
_LOG_TAIL_LINES = 40
_ADDRESS_IN_USE = re.compile(r"already in use", re.IGNORECASE)


class ZEOStartError(RuntimeError):
    """The ZEO server exited or did not accept clients in time.

    The message ends with the tail of the server log.
    """


class _AddressInUse(Exception):
    """The server process exited because its port was taken."""


def open_db(address_or_config):
    """Open a new ``ZODB.DB`` on a storage server; for subprocess code.

    *address_or_config* is either a ZConfig storage section as a string,
    like those :meth:`ZEOServer.client_storage_config` and
    ``PostgreSQLDatabase.zconfig`` return, or a ``(host, port)`` pair (any
    two-item sequence, so that it survives JSON) naming a ZEO server; a
    database opened from a bare address has no blob support.  The caller
    must close the returned database.
    """
    if isinstance(address_or_config, str):
        storage = ZODB.config.storageFromString(address_or_config)
    else:
        host, port = address_or_config
        storage = ClientStorage(
            (host, int(port)), wait_timeout=CLIENT_WAIT_TIMEOUT
        )
    return ZODB.DB(storage)


class ZEOServer:
    """A ZEO server process serving ``Data.fs`` and ``blobs`` in *directory*.

    The server listens on a free port of 127.0.0.1, chosen on the first
    :meth:`start`; later starts reuse that address, so that clients opened
    before a :meth:`stop` reconnect on their own.  Server output goes to
    ``zeo.log`` in *directory*, which is created if missing.

    The instance is a context manager: entering starts the server and
    returns the instance, leaving stops it.
    """

    def __init__(self, directory):
        self.directory = Path(directory).resolve()
        self.directory.mkdir(parents=True, exist_ok=True)
        self.log_path = self.directory / "zeo.log"
        self.blob_dir = self.directory / "blobs"
        self._address = None
        self._process = None
        self._log_offset = 0

    @property
    def address(self):
        """The ``(host, port)`` the server listens on.

        Raises ``RuntimeError`` before the first successful start.
        """
        if self._address is None:
            raise RuntimeError("the ZEO server has never been started")
        return self._address

    @property
    def pid(self):
        """The process id of the server, or ``None`` when stopped."""
        return None if self._process is None else self._process.pid

    def start(self, timeout=30):
        """Start the server and return once a client can use the database.

        The database's root object exists on return, so clients started
        concurrently afterwards do not conflict creating it.  On the first
        start, a port found taken by the time the server binds it is
        replaced by another free one, a few times.  Raises
        ``RuntimeError`` if the server is already running, and
        :class:`ZEOStartError` if the server exits or is not ready within
        *timeout* seconds; the server process is gone in both error cases.
        """
        if self._process is not None:
            raise RuntimeError(f"the ZEO server is running, pid {self.pid}")
        deadline = time.monotonic() + timeout
        for _ in range(_BIND_ATTEMPTS):
            address = self._address or (HOST, _free_port())
            self._launch(address)
            try:
                self._wait_until_ready(address, deadline)
            except _AddressInUse:
                self._process = None
                if self._address is not None:
                    raise ZEOStartError(
                        self._failure(f"could not bind {address}")
                    ) from None
                continue
            except BaseException:
                self.stop()
                raise
            self._address = address
            atexit.register(self.stop)
            return
        raise ZEOStartError(
            self._failure(f"found no free port in {_BIND_ATTEMPTS} attempts")
        )

    def stop(self, timeout=10):
        """Stop the server: SIGTERM, then SIGKILL after *timeout* seconds.

        Returns once the process has exited.  Stopping a stopped server
        does nothing.  A running server is also stopped at interpreter
        exit.
        """
        process, self._process = self._process, None
        if process is None:
            return
        atexit.unregister(self.stop)
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def kill(self):
        """SIGKILL the server (a crash); :meth:`start` brings it back on
        the same port.  Killing a stopped server does nothing."""
        process, self._process = self._process, None
        if process is None:
            return
        atexit.unregister(self.stop)
        process.kill()
        process.wait()

    def client_storage(self, **kw):
        """Return a new ``ClientStorage`` connected to the server.

        It shares the server's blob directory.  Keyword arguments are
        passed to ``ClientStorage`` and override the defaults.
        """
        options = dict(
            blob_dir=str(self.blob_dir),
            shared_blob_dir=True,
            wait_timeout=CLIENT_WAIT_TIMEOUT,
        )
        options.update(kw)
        return ClientStorage(self.address, **options)

    def db(self, **kw):
        """Return a new ``ZODB.DB`` over :meth:`client_storage`.

        Keyword arguments are passed to ``ZODB.DB``.  The caller must close
        the database, which closes its storage.
        """
        return ZODB.DB(self.client_storage(), **kw)

    def client_storage_config(self):
        """Return a ZConfig storage section equivalent to :meth:`db`'s.

        The string is meant for :func:`open_db` in other processes, which
        need not import this module.
        """
        host, port = self.address
        return (
            "%import ZEO\n"
            "<clientstorage>\n"
            f"  server {host}:{port}\n"
            f"  blob-dir {_zconfig_value(self.blob_dir)}\n"
            "  shared-blob-dir true\n"
            f"  wait-timeout {CLIENT_WAIT_TIMEOUT}\n"
            "</clientstorage>\n"
        )

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc_info):
        self.stop()

    def _launch(self, address):
        """Start the server process, noting where its output begins."""
        config = self.directory / "zeo.conf"
        host, port = address
        config.write_text(
            "<zeo>\n"
            f"  address {host}:{port}\n"
            "</zeo>\n"
            "<filestorage 1>\n"
            f"  path {_zconfig_value(self.directory / 'Data.fs')}\n"
            f"  blob-dir {_zconfig_value(self.blob_dir)}\n"
            "</filestorage>\n"
        )
        with self.log_path.open("ab") as log:
            self._log_offset = log.tell()
            # Without an <eventlog> section runzeo logs to stderr, which
            # then also captures tracebacks and usage errors.
            self._process = subprocess.Popen(
                [sys.executable, "-m", "ZEO.runzeo", "-C", str(config)],
                cwd=self.directory,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def _wait_until_ready(self, address, deadline):
        while True:
            if self._process.poll() is not None:
                if _ADDRESS_IN_USE.search(self._output()):
                    raise _AddressInUse()
                raise ZEOStartError(self._failure(
                    f"exited with status {self._process.returncode}"
                ))
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ZEOStartError(
                    self._failure("did not accept clients in time")
                )
            if self._try_client(address, remaining):
                return
            time.sleep(_POLL_INTERVAL)

    def _try_client(self, address, remaining):
        """Return whether a client could open the database."""
        # Short timeouts, so that a dying server is noticed soon; the plain
        # connect spares a ClientStorage thread while nothing listens yet.
        timeout = min(remaining, 1)
        try:
            socket.create_connection(address, timeout=timeout).close()
        except OSError:
            return False
        try:
            storage = ClientStorage(address, wait_timeout=timeout)
        except ClientDisconnected:
            return False
        try:
            ZODB.DB(storage).close()
        except ClientDisconnected:
            storage.close()
            return False
        return True

    def _failure(self, reason):
        tail = self._output().splitlines()[-_LOG_TAIL_LINES:]
        return (
            f"ZEO server in {self.directory} {reason}; "
            f"last lines of {self.log_path}:\n" + "\n".join(tail)
        )

    def _output(self):
        """Return what the latest server process has logged."""
        with self.log_path.open("rb") as log:
            log.seek(self._log_offset)
            return log.read().decode("utf-8", "replace")


def _free_port():
    """Return a loopback port that was free a moment ago."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def _zconfig_value(value):
    """Quote *value* for a ZConfig key line, where ``$`` substitutes."""
    return str(value).replace("$", "$$")
