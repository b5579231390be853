"""Worker and producer processes for multi-process tests and benchmarks.

A :class:`WorkerProcess` runs ``python -m plone.app.asyncjobs.engine.testing.processes
worker ...``: a real dispatcher (``configure.start``) over a storage given
as ZConfig text (from :class:`~.zeo.ZEOServer` or
:class:`~.postgres.PostgreSQLDatabase`), with its own UUID file.  It stops
cleanly on SIGTERM (the dispatcher deactivates, handing back its jobs) and
can be killed hard with :meth:`WorkerProcess.kill` to simulate a crash.

``produce`` queues jobs from a separate process::

    python -m plone.app.asyncjobs.engine.testing.processes produce CONFIG \\
        --count 2000 --batch 100 --function module:name --argument text

With ``--unique-keys`` job ``n`` is put with the unique key ``key-n``;
with ``--ready-file R --gate G`` the producer opens the database, creates
``R`` and waits for ``G`` to exist before queuing, so that several
producers can be made to start together.  It prints its conflicts.
"""
import argparse
import atexit
import importlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import transaction
from ZODB.POSException import ConflictError

from plone.app.asyncjobs.engine import configure
from plone.app.asyncjobs.engine.gcfreeze import freeze_start_up
from plone.app.asyncjobs.engine.job import Job
from plone.app.asyncjobs.engine.log import events
from plone.app.asyncjobs.engine.transactions import retry_conflicts
from plone.app.asyncjobs.engine.testing.waiting import wait_for_poll
from plone.app.asyncjobs.engine.testing.waiting import wait_until
from plone.app.asyncjobs.engine.testing.zeo import open_db


_running = set()


@atexit.register
def _kill_leftovers():
    for process in list(_running):
        process.kill()


class ExitedAtStart(RuntimeError):
    """A worker process ended before its dispatcher's first poll (say, a
    job it claimed at once ended the process)."""


class WorkerProcess:
    """A worker process on the database described by ``storage_config``."""

    def __init__(self, directory, storage_config, name="worker", poll_interval=0.2,
                 agent_size=3, ping_interval=None, ping_death_interval=None, push=True):
        self.directory = Path(directory).resolve()
        self.name = name
        self.config_path = self.directory / f"{name}.storage.conf"
        self.uuid_path = self.directory / f"{name}.uuid"
        self.ready_path = self.directory / f"{name}.ready"
        self.log_path = self.directory / f"{name}.log"
        self.statistics_path = self.directory / f"{name}.statistics.json"
        self.storage_config = storage_config
        self.options = ["--poll-interval", str(poll_interval), "--agent-size", str(agent_size)]
        if ping_interval is not None:
            self.options += ["--ping-interval", str(ping_interval)]
        if ping_death_interval is not None:
            self.options += ["--ping-death-interval", str(ping_death_interval)]
        if not push:
            self.options.append("--no-push")
        self.process = None

    @property
    def pid(self):
        return self.process.pid if self.process else None

    @property
    def uuid(self):
        return uuid.UUID(self.uuid_path.read_text().splitlines()[0])

    def start(self, timeout=60):
        """Start the process and wait until its dispatcher has polled once."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self.storage_config)
        self.ready_path.unlink(missing_ok=True)
        command = [sys.executable, "-m", __name__, "worker", str(self.config_path),
                   "--uuid-file", str(self.uuid_path), "--ready-file", str(self.ready_path),
                   "--statistics-file", str(self.statistics_path), *self.options]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        _running.add(self)
        try:
            wait_until(lambda: self.ready_path.exists() or self.process.poll() is not None,
                       timeout, describe=lambda: f"for {self.name} to start")
        except AssertionError:
            self.kill()
            raise RuntimeError(f"{self.name} did not start:\n{self.log_tail()}") from None
        if not self.ready_path.exists():
            raise ExitedAtStart(f"{self.name} exited at start:\n{self.log_tail()}")
        return self

    def stop(self, timeout=30):
        """SIGTERM, wait; SIGKILL after ``timeout``.  Returns the exit code."""
        if self.process is None or self.process.poll() is not None:
            return self._forget()
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        return self._forget()

    def kill(self):
        """SIGKILL: the process dies without any clean-up (a crash)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        return self._forget()

    def _forget(self):
        _running.discard(self)
        return self.process.returncode if self.process else None

    def statistics(self):
        """The dispatcher's counters, written when the process stopped cleanly."""
        return json.loads(self.statistics_path.read_text())

    def log_tail(self, lines=40):
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text().splitlines()[-lines:])


def produce(storage_config, function, arguments, count, batch, numbered=True,
            unique_keys=False, ready_file=None, gate=None):
    """Queue ``count`` jobs calling ``function(*arguments[, n])``, ``batch`` per commit
    (job ``n`` with the unique key ``key-n`` if ``unique_keys``).

    Conflicting commits are retried, as a Zope request would be.  Returns
    the number of conflicts.
    """
    db = open_db(storage_config)
    conflicts = 0
    try:
        if gate is not None:
            Path(ready_file).write_text(str(os.getpid()))
            wait_until(Path(gate).exists, seconds=60, interval=0.01)
        manager = transaction.TransactionManager()
        connection = db.open(transaction_manager=manager)
        for start in range(0, count, batch):
            def put_batch():
                queue = configure.get_queue(connection)
                for number in range(start, min(start + batch, count)):
                    extra = (number,) if numbered else ()
                    queue.put(Job(function, *arguments, *extra),
                              unique_key=f"key-{number}" if unique_keys else None)

            while True:
                try:
                    retry_conflicts(put_batch, manager, "queueing a batch", attempts=1)
                    break
                except ConflictError:
                    conflicts += 1
        connection.close()
    finally:
        db.close()
    return conflicts


def _resolve(spec):
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def _run_worker(options):
    # Timestamped warnings, and the engine's life-cycle events, in the log file.
    logging.basicConfig(level=logging.WARNING,
                        format="%(asctime)s %(process)d %(levelname)s %(name)s %(message)s")
    events.setLevel(logging.INFO)
    os.environ["ZC_ASYNC_UUID"] = options.uuid_file
    db = open_db(Path(options.config).read_text())
    dispatcher = configure.start(
        db, poll_interval=options.poll_interval, agent_size=options.agent_size,
        ping_interval=options.ping_interval, ping_death_interval=options.ping_death_interval,
        push=options.push,
    )
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    wait_for_poll(dispatcher, seconds=60)
    freeze_start_up()
    Path(options.ready_file).write_text(str(os.getpid()))
    while not stopping.wait(1):
        pass
    configure.stop(dispatcher)
    Path(options.statistics_file).write_text(json.dumps(dict(dispatcher.statistics)))
    db.close()


def main(argv=None):
    parser = argparse.ArgumentParser(prog=__name__)
    roles = parser.add_subparsers(dest="role", required=True)
    worker = roles.add_parser("worker", help="run a dispatcher until SIGTERM")
    worker.add_argument("config", help="file holding the storage's ZConfig text")
    worker.add_argument("--uuid-file", required=True)
    worker.add_argument("--ready-file", required=True)
    worker.add_argument("--statistics-file", required=True)
    worker.add_argument("--poll-interval", type=float, default=0.2)
    worker.add_argument("--agent-size", type=int, default=3)
    worker.add_argument("--ping-interval", type=float)
    worker.add_argument("--ping-death-interval", type=float)
    worker.add_argument("--no-push", dest="push", action="store_false",
                        help="find queued jobs by polling only")
    producer = roles.add_parser("produce", help="queue jobs and exit")
    producer.add_argument("config")
    producer.add_argument("--function", required=True, help="module:name")
    producer.add_argument("--argument", action="append", default=[])
    producer.add_argument("--count", type=int, required=True)
    producer.add_argument("--batch", type=int, default=100)
    producer.add_argument("--unique-keys", action="store_true")
    producer.add_argument("--ready-file")
    producer.add_argument("--gate")
    options = parser.parse_args(argv)
    if options.role == "worker":
        _run_worker(options)
    else:
        conflicts = produce(Path(options.config).read_text(), _resolve(options.function),
                            options.argument, options.count, options.batch,
                            unique_keys=options.unique_keys, ready_file=options.ready_file,
                            gate=options.gate)
        print(f"conflicts {conflicts}")


if __name__ == "__main__":
    main()
