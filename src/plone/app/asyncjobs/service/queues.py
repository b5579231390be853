"""Finding the queues from a Zope process's connection to the main database.

Two layouts are supported:

* single database: the queues container lives in the main database, at
  ``root[KEY]``;
* multi database: it lives in a database named ``async`` (a ``<zodb_db
  async>`` mounted in zope.conf of every instance and worker), at its
  ``root[KEY]``, and the main root references it under the same key (as
  the engine's ``configure.install_queues`` stores it).

The layout is recognised from the databases the connection knows, so
instances need no configuration of their own.

Every queue the Plone integration creates (here, or in a starting worker)
gets a quota named ``default`` of size 1 (a starting worker also adds it
where it is missing), and jobs queued through
``IAsyncService`` without quota names count against it: they run one at a
time across all workers, in the order they were queued, as with
plone.app.async.  ``default-quota-size`` in ``<product-config
plone.app.asyncjobs>`` sets another size (``0``: no such quota); see
:func:`configure_default_quota`.  Jobs queued with
:mod:`plone.app.asyncjobs.api` count against no quota unless told.
``default-timeout`` and ``timeout-grace`` set the queues' time limits the
same way (see :func:`configure_time_limits`).
"""
from plone.app.asyncjobs.engine.configure import ensure_queues
from plone.app.asyncjobs.engine.interfaces import IQueue
from plone.app.asyncjobs.engine.queue import KEY
from plone.app.asyncjobs.engine.queue import Queue
from plone.app.asyncjobs.worker.config import worker_settings


#: Name of the database holding the queues in the multi-database layout.
ASYNC_DATABASE = "async"

#: The quota ``IAsyncService`` jobs count against when the queue has it.
DEFAULT_QUOTA = "default"

#: Its size in new queues: one job at a time, as plone.app.async had it.
DEFAULT_QUOTA_SIZE = 1


def queues_database_name(connection):
    """The name of the database holding the queues for ``connection`` (a
    connection to the main database): ``'async'`` if the process has such
    a database besides the main one, else ``None``."""
    db = connection.db()
    other = db.databases.get(ASYNC_DATABASE)
    if other is not None and other is not db:
        return ASYNC_DATABASE
    return None


def queues_connection(connection):
    """The connection, joined to ``connection``'s transaction, to the
    database holding the queues."""
    name = queues_database_name(connection)
    return connection if name is None else connection.get_connection(name)


def find_queues(connection):
    """Return the queues container seen by ``connection``, or ``None``."""
    return queues_connection(connection).root().get(KEY)


def get_queues(connection, create=True, queue_names=("",)):
    """Return the queues container for ``connection``'s database.

    If no worker ever ran, there is none yet: with ``create`` it is made
    in the *current transaction* (so a job queued next is in the same
    commit), with the queues ``queue_names``; else ``LookupError``.  Two
    requests creating it at once conflict on the root, and the publisher
    retries one of them.
    """
    existing = find_queues(connection)
    if existing is None and not create:
        raise LookupError(
            "no job queues in this database yet; a worker creates them "
            "when it starts, and queuing a job creates them too"
        )
    missing = [name for name in queue_names if existing is None or name not in existing]
    queues = ensure_queues(connection, queue_names, queues_database_name(connection))
    for name in missing:
        configure_default_quota(queues[name], configured_default_quota_size())
        configure_time_limits(queues[name])
    return queues


def resolve_queue(connection, queue, create_default=("",)):
    """Return the queue ``queue`` (a queue, or a name) for ``connection``.

    Queues named in ``create_default`` are created when missing; other
    unknown names raise ``LookupError`` (a typo would otherwise queue jobs
    no worker serves), anything else ``TypeError``.
    """
    if IQueue.providedBy(queue):
        return queue
    if not isinstance(queue, str):
        raise TypeError(f"queue must be a queue name (a string) or a queue, not {queue!r}")
    queues = get_queues(connection, queue_names=())
    if queue not in queues:
        if queue not in create_default:
            raise LookupError(
                f"there is no job queue named {queue!r}; known queues: "
                f"{sorted(queues)}"
            )
        return add_queue(queues, queue)
    return queues[queue]


def add_queue(queues, name):
    """Create the queue ``name`` in ``queues`` (usable in this transaction),
    with the ``default`` quota (see the module doc)."""
    queues[name] = Queue()
    configure_default_quota(queues[name], configured_default_quota_size())
    configure_time_limits(queues[name])
    return queues[name]


def configure_default_quota(queue, size=None):
    """Give ``queue`` the quota ``default``.

    ``size`` ``None`` (not configured): create it with
    :data:`DEFAULT_QUOTA_SIZE` if it is missing, and leave an existing one
    as it is.  A number: create or resize it to that size; ``0``: remove
    it, so that ``IAsyncService`` jobs count against no quota.
    """
    quota = queue.quotas.get(DEFAULT_QUOTA)
    if size == 0:
        if quota is not None:
            queue.quotas.remove(DEFAULT_QUOTA)
    elif quota is None:
        queue.quotas.create(DEFAULT_QUOTA, size=size or DEFAULT_QUOTA_SIZE)
    elif size is not None and quota.size != size:
        quota.size = size


def configure_time_limits(queue, settings=None):
    """Give ``queue`` the ``default-timeout`` (``0``: no limit) and
    ``timeout-grace`` of ``settings`` (default: this process's zope.conf);
    what is not configured stays as the queue has it.  Writes the queue
    only when a value changes."""
    settings = settings or worker_settings()
    if settings.default_timeout is not None:
        limit = settings.default_timeout or None
        if queue.default_timeout != limit:
            queue.default_timeout = limit
    if settings.timeout_grace is not None and queue.timeout_grace != settings.timeout_grace:
        queue.timeout_grace = settings.timeout_grace


def configured_default_quota_size():
    """``default-quota-size`` of this process's zope.conf, or ``None``."""
    return worker_settings().default_quota_size
