"""Set-up for standalone use with plain ZODB (Zope set-ups build on it).

Typical use in a worker process::

    from plone.app.asyncjobs.engine import configure
    dispatcher = configure.start(db)
    ...
    configure.stop(dispatcher)

and in any process that only queues jobs::

    from plone.app.asyncjobs.engine.configure import get_queue
    from plone.app.asyncjobs.engine.job import Job
    get_queue(connection).put(Job(func, arg))
    transaction.commit()

(``put``'s own keyword arguments are options such as ``begin_after``: the
job's arguments go to :class:`~.job.Job`.)
"""

import transaction
from persistent.interfaces import IPersistent
from ZODB.interfaces import IConnection
from zope.component import provideAdapter

from plone.app.asyncjobs.engine.agent import Agent
from plone.app.asyncjobs.engine.dispatcher import POLL_INTERVAL
from plone.app.asyncjobs.engine.dispatcher import Dispatcher
from plone.app.asyncjobs.engine.interfaces import IQueue
from plone.app.asyncjobs.engine.log import events
from plone.app.asyncjobs.engine.queue import KEY
from plone.app.asyncjobs.engine.queue import Queue
from plone.app.asyncjobs.engine.queue import Queues
from plone.app.asyncjobs.engine.reactor import ReactorThread
from plone.app.asyncjobs.engine.transactions import retry_conflicts


def base():
    """Register the adapters Zope-style code expects (idempotent):
    ``IQueue(obj)`` returns the default queue of the database of a
    connection or of a stored persistent object.  (``IJob(callable)``, a
    :class:`~.job.Job` calling it, needs no registration: see :mod:`.job`.)
    """
    provideAdapter(get_queue, (IConnection,), IQueue)
    provideAdapter(_default_queue_of_object, (IPersistent,), IQueue)


def _default_queue_of_object(obj):
    return get_queue(obj._p_jar)


def ensure_queues(connection, queue_names=("",), database_name=None):
    """Create the queues container and the named queues where missing.

    Works in the current transaction of ``connection`` and commits nothing.
    With ``database_name``, the container is stored in that database of a
    multi-database set-up (keeping queue churn out of the main database)
    and referenced from the main root under the same key.  Returns the
    container.
    """
    if isinstance(queue_names, str):
        raise TypeError(f"queue_names must be a sequence of names, not the string "
                        f"{queue_names!r}")
    home = connection if database_name is None else connection.get_connection(database_name)
    queues = home.root().get(KEY)
    if queues is None:
        queues = Queues()
        # Added at once, so that queues created below (and jobs put in them)
        # can be used before this transaction commits.
        home.add(queues)
        home.root()[KEY] = queues
        events.info("installed the queues container in database %r",
                    home.db().database_name)
    if home is not connection and connection.root().get(KEY) is not queues:
        connection.root()[KEY] = queues
    for name in queue_names:
        if name not in queues:
            queues[name] = Queue()
            events.info("installed queue %r", name)
    return queues


def install_queues(db, queue_names=("",), database_name=None):
    """:func:`ensure_queues` in a connection of its own, and commit.  Idempotent."""
    manager = transaction.TransactionManager()
    connection = db.open(transaction_manager=manager)
    try:
        retry_conflicts(lambda: ensure_queues(connection, queue_names, database_name),
                        manager, "installing queues")
    finally:
        connection.close()


def get_queues(connection):
    """Return the queues container of the database behind ``connection``."""
    try:
        return connection.root()[KEY]
    except KeyError:
        raise LookupError(
            "no queues in this database; call configure.install_queues(db) "
            "or start a worker first"
        ) from None


def get_queue(connection, name=""):
    """Return the queue ``name`` (default: the default queue ``''``)."""
    return get_queues(connection)[name]


def start(db, poll_interval=POLL_INTERVAL, database_name=None, agent_size=3, agent_filter=None,
          queue_names=("",), uuid=None, **dispatcher_options):
    """Install queues, then start a dispatcher on a private reactor thread.

    The dispatcher gets one agent ``'main'`` with ``agent_size`` threads
    and ``agent_filter`` in every queue; ``dispatcher_options`` go to
    :class:`~plone.app.asyncjobs.engine.dispatcher.Dispatcher`.  Returns the
    dispatcher; its ``reactor_thread`` attribute runs its reactor.
    """
    install_queues(db, queue_names, database_name)
    reactor_thread = ReactorThread()
    try:
        dispatcher = Dispatcher(
            db, reactor_thread.reactor, poll_interval=poll_interval, uuid=uuid,
            agents={"main": AgentFactory(size=agent_size, filter=agent_filter)},
            **dispatcher_options,
        )
        dispatcher.reactor_thread = reactor_thread
        dispatcher.activate()
    except BaseException:
        reactor_thread.stop()  # never started: closes its wake-up pipe
        raise
    reactor_thread.start()
    return dispatcher


def stop(dispatcher, timeout=30):
    """Deactivate ``dispatcher`` and stop its reactor thread.

    Returns whether everything stopped within ``timeout`` seconds.
    """
    dispatcher.stop()
    return dispatcher.reactor_thread.stop(timeout)


class AgentFactory:
    """Creates agents with fixed settings (picklable, for ``Dispatcher.agents``)."""

    def __init__(self, size=3, filter=None):
        self.size = size
        self.filter = filter

    def __call__(self):
        return Agent(filter=self.filter, size=self.size)
