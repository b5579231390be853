"""What a Zope process runs on its private reactor: a worker's dispatcher,
and the monitor server.

Zope fires ``zope.processlifetime.IProcessStarting`` once its WSGI
application is ready (``Zope2.Startup.run.make_wsgi_app``, which the WSGI
server entry points call).  :func:`process_starting`, subscribed in
``configure.zcml``, then starts, on one private Twisted reactor in a daemon
thread:

* the dispatcher, if ``single_db.zcml`` or ``multi_db.zcml`` registered a
  worker role (``IWorkerRole``) in this process;
* the monitor server, if zope.conf has ``<product-config zc.z3monitor>``
  with ``port`` or ``bind``, in every process;
* the worker's metrics endpoint (:mod:`.metrics`), with the dispatcher, if
  ``<product-config plone.app.asyncjobs>`` has ``metrics-port``.

A worker then exempts the objects of its start-up from the garbage
collector's full collections (:mod:`plone.app.asyncjobs.engine.gcfreeze`),
unless ``gc-freeze off``.

``bin/instance run`` / ``bin/instance debug`` never fire the event.
``zconsole run`` / ``zconsole debug`` do (they call ``make_wsgi_app``), so
the worker role is ignored when ``Zope2.utilities.zconsole`` has been
imported: a script must not claim jobs it would abandon when it ends.

SIGTERM and SIGINT handlers, installed from the main thread, stop the
dispatcher (running jobs get ``shutdown-grace`` seconds to finish; the rest
are handed back), the monitor and the reactor, then do what the handler
before them did: SIGINT raises ``KeyboardInterrupt`` (waitress and Zope
then shut down as after Ctrl-C), SIGTERM raises ``SystemExit`` (Zope and
waitress install no SIGTERM handler, so without this the process would die
at once).  An ``atexit`` hook stops everything at any other exit.
"""
import atexit
import logging
import os
import signal
import sys
import threading

import transaction
from twisted.internet.threads import blockingCallFromThread
from zope.component import queryUtility

from plone.app.asyncjobs.engine.configure import AgentFactory
from plone.app.asyncjobs.engine.configure import install_queues
from plone.app.asyncjobs.engine.dispatcher import Dispatcher
from plone.app.asyncjobs.engine.gcfreeze import freeze_start_up
from plone.app.asyncjobs.engine.instanceuuid import ENVIRONMENT_VARIABLE
from plone.app.asyncjobs.engine.instanceuuid import get_uuid
from plone.app.asyncjobs.engine.instanceuuid import uuid_path
from plone.app.asyncjobs.engine.queue import KEY
from plone.app.asyncjobs.engine.reactor import ReactorThread
from plone.app.asyncjobs.engine.transactions import retry_conflicts
from plone.app.asyncjobs.interfaces import IWorkerRole
from plone.app.asyncjobs.monitor import databases as monitor_databases
from plone.app.asyncjobs.monitor.server import address_from_config
from plone.app.asyncjobs.monitor.server import start_server
from plone.app.asyncjobs.monitor.server import stop_server
from plone.app.asyncjobs.service.queues import configure_default_quota
from plone.app.asyncjobs.service.queues import configure_time_limits
from plone.app.asyncjobs.worker.config import MONITOR_PRODUCT_CONFIG
from plone.app.asyncjobs.worker.config import WorkerSettings
from plone.app.asyncjobs.worker.config import product_config
from plone.app.asyncjobs.worker.config import worker_settings
from plone.app.asyncjobs.worker.metrics import start_metrics_server
from plone.app.asyncjobs.worker.metrics import stop_metrics_server


logger = logging.getLogger("plone.app.asyncjobs")

#: The agent a worker installs in every queue.
AGENT_NAME = "main"

#: Seconds to wait for the reactor thread when stopping.
STOP_TIMEOUT = 30

_runtime = None
_runtime_lock = threading.Lock()


def current():
    """The running :class:`ProcessRuntime` of this process, or ``None``."""
    runtime = _runtime
    return runtime if runtime is not None and runtime.running else None


def in_console_script():
    """Whether this process is a ``zconsole run`` / ``zconsole debug``."""
    return "Zope2.utilities.zconsole" in sys.modules


def process_starting(event):
    """``IProcessStarting`` subscriber: start the worker and/or the monitor."""
    role = queryUtility(IWorkerRole)
    if role is not None and in_console_script():
        logger.info("zconsole script: not starting the job worker of this instance")
        role = None
    monitor_address = address_from_config(product_config(MONITOR_PRODUCT_CONFIG))
    if role is None and monitor_address is None:
        return None
    import Zope2

    settings = worker_settings() if role is not None else None
    runtime = start(Zope2.DB, role=role, monitor_address=monitor_address, settings=settings)
    if settings is not None and settings.gc_freeze:
        freeze_start_up()
    return runtime


def start(db, role=None, monitor_address=None, settings=None, uuid=None,
          install_signal_handlers=True):
    """Start this process's :class:`ProcessRuntime` (once); return it."""
    global _runtime
    with _runtime_lock:
        if current() is not None:
            logger.warning("the job worker runtime of this process runs already")
            return _runtime
        runtime = ProcessRuntime()
        runtime.start(db, role=role, monitor_address=monitor_address, settings=settings,
                      uuid=uuid, install_signal_handlers=install_signal_handlers)
        _runtime = runtime
    return runtime


def stop(timeout=STOP_TIMEOUT):
    """Stop this process's runtime, if one runs."""
    runtime = _runtime
    if runtime is not None:
        runtime.stop(timeout)


class ProcessRuntime:
    """A private reactor thread with a dispatcher (and its metrics
    endpoint) and/or a monitor server."""

    def __init__(self):
        self.reactor_thread = None
        self.dispatcher = None
        self.monitor_port = None
        #: The listening port of the metrics endpoint, or None.
        self.metrics_port = None
        self.database_names = ()
        self.running = False
        self._previous_handlers = {}
        self._stop_lock = threading.Lock()

    # -- starting ---------------------------------------------------------------

    def start(self, db, role=None, monitor_address=None, settings=None, uuid=None,
              install_signal_handlers=True):
        """Set up everything on a new reactor, then start its thread."""
        self.reactor_thread = ReactorThread()
        reactor = self.reactor_thread.reactor
        self._register_databases(db)
        settings = settings or WorkerSettings()
        try:
            if role is not None:
                self.dispatcher = self._make_dispatcher(db, role, settings, uuid, reactor)
            # Servers start before the reactor runs: no thread hand-over needed.
            if monitor_address is not None:
                self.monitor_port = start_server(reactor, monitor_address)
            if self.dispatcher is not None and settings.metrics_port is not None:
                self.metrics_port = start_metrics_server(
                    reactor, settings.metrics_host, settings.metrics_port)
            if self.dispatcher is not None:
                self.dispatcher.activate()
            self.reactor_thread.start()
        except BaseException:
            self._unregister_databases()
            raise
        self.running = True
        if install_signal_handlers:
            self._install_signal_handlers()
        atexit.register(self.stop)
        if self.dispatcher is not None:
            logger.info(
                "job worker %s started (queues %s, poll interval %ss)",
                self.dispatcher.uuid, role, self.dispatcher.poll_interval,
            )

    def _make_dispatcher(self, db, role, settings, uuid, reactor):
        name = role.queues_database
        if name is None:
            queues_db = db
        else:
            queues_db = db.databases.get(name)
            if queues_db is None:
                raise LookupError(
                    f"multi_db.zcml: no database named {name!r}; mount one in "
                    f"zope.conf (<zodb_db {name}> ... mount-point /zasync)"
                )
        if uuid is None and not os.environ.get(ENVIRONMENT_VARIABLE):
            logger.warning(
                "%s is not set: this worker keeps its identity in %s; give each "
                "worker process a file of its own", ENVIRONMENT_VARIABLE, uuid_path().resolve(),
            )
        uuid = uuid or get_uuid()
        install_queues(db, settings.queue_names, name)
        _configure_queues(queues_db, uuid, settings)
        return Dispatcher(
            queues_db, reactor, poll_interval=settings.poll_interval, uuid=uuid,
            agents={AGENT_NAME: AgentFactory(size=settings.agent_size)},
            shutdown_grace=settings.shutdown_grace,
        )

    def _register_databases(self, db):
        databases = dict(getattr(db, "databases", None) or {})
        if not databases:
            databases = {db.database_name: db}
        names = []
        for name, database in sorted(databases.items()):
            try:
                monitor_databases.register_database(name, database)
            except ValueError:
                logger.warning("database %r cannot be named in monitor commands", name)
                continue
            names.append(name)
        self.database_names = tuple(names)

    def _unregister_databases(self):
        for name in self.database_names:
            monitor_databases.unregister_database(name)
        self.database_names = ()

    # -- signals ----------------------------------------------------------------

    def _install_signal_handlers(self):
        if threading.current_thread() is not threading.main_thread():
            logger.warning(
                "not started from the main thread: cannot install SIGTERM/SIGINT "
                "handlers; stop the job worker with its runtime's stop()"
            )
            return
        for signum in (signal.SIGTERM, signal.SIGINT):
            self._previous_handlers[signum] = signal.getsignal(signum)
            signal.signal(signum, self._on_signal)

    def _restore_signal_handlers(self):
        if threading.current_thread() is not threading.main_thread():
            return
        for signum, previous in self._previous_handlers.items():
            if signal.getsignal(signum) == self._on_signal:
                signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
        self._previous_handlers.clear()

    def _on_signal(self, signum, frame):
        previous = self._previous_handlers.get(signum)
        logger.info("%s: stopping the job worker", signal.Signals(signum).name)
        self.stop()
        if callable(previous):
            return previous(signum, frame)
        if previous == signal.SIG_IGN:
            return None
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise SystemExit(0)

    # -- stopping ---------------------------------------------------------------

    def stop(self, timeout=STOP_TIMEOUT):
        """Stop the dispatcher, its metrics endpoint, the monitor and the
        reactor; idempotent.

        Returns whether the reactor thread ended within ``timeout`` seconds.
        """
        with self._stop_lock:
            if not self.running:
                return True
            self.running = False
        reactor = self.reactor_thread.reactor
        alive = self.reactor_thread.running
        if self.dispatcher is not None:
            try:
                self.dispatcher.stop()
            except Exception:
                logger.exception("stopping dispatcher %s failed", self.dispatcher.uuid)
        if self.metrics_port is not None:
            try:
                if alive:
                    blockingCallFromThread(reactor, stop_metrics_server, self.metrics_port)
                else:
                    stop_metrics_server(self.metrics_port)
            except Exception:
                logger.exception("stopping the metrics endpoint failed")
            self.metrics_port = None
        if self.monitor_port is not None:
            try:
                if alive:
                    blockingCallFromThread(reactor, stop_server, self.monitor_port)
                else:
                    stop_server(self.monitor_port)
            except Exception:
                logger.exception("stopping the monitor server failed")
            self.monitor_port = None
        stopped = self.reactor_thread.stop(timeout)
        if not stopped:
            logger.error("the job worker's reactor thread did not stop in %ss", timeout)
        self._unregister_databases()
        self._restore_signal_handlers()
        try:
            atexit.unregister(self.stop)
        except Exception:  # pragma: no cover - atexit.unregister does not raise
            pass
        if self.dispatcher is not None:
            logger.info("job worker %s stopped", self.dispatcher.uuid)
        return stopped


def _configure_queues(db, uuid, settings):
    """Apply ``default-quota-size``, ``default-timeout``, ``timeout-grace``
    and ``agent-size`` to the queues."""
    manager = transaction.TransactionManager()
    connection = db.open(transaction_manager=manager)

    def configure():
        queues = connection.root()[KEY]
        for name in settings.queue_names:
            queue = queues[name]
            configure_default_quota(queue, settings.default_quota_size)
            configure_time_limits(queue, settings)
            record = queue.dispatchers.get(uuid)
            agent = record.get(AGENT_NAME) if record is not None else None
            if settings.agent_size_configured and agent is not None \
                    and agent.size != settings.agent_size:
                agent.size = settings.agent_size

    try:
        retry_conflicts(configure, manager, "configuring the job queues")
    finally:
        connection.close()
