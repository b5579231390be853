"""Wake-up channels: how a dispatcher learns at once that jobs were queued.

Every queue has a *doorbell* (see :attr:`.queue.Queue.doorbell`), a
conflict-free counter changed in every transaction that makes a job of
that queue pending.  A dispatcher listens for changes of its database's
doorbells through the channel that suits the storage
(:func:`channel_for`):

* :class:`InvalidationChannel` for storages behind ZODB's MVCC adapter
  (ZEO's ClientStorage, FileStorage, MappingStorage).  The adapter hands
  the oids changed by every committed transaction to its instances (one
  per open connection) - transactions of other processes, which ZEO
  sends to every client, and those of this process alike.  The channel
  registers one more instance.
* :class:`PostgreSQLChannel` for RelStorage on PostgreSQL, whose clients
  learn of other commits only when they next look.  After a commit that
  rang doorbells, the producer sends ``NOTIFY`` on :data:`PG_CHANNEL`
  with the doorbells' oids (PostgreSQL delivers it to listeners of the
  same database only: the channel is per queue database); each dispatcher
  holds a ``LISTEN``ing connection in a thread of its own, reconnecting
  when PostgreSQL goes away.

A channel delivers a *ring* to its listener's callback: an iterable of
changed oids, or ``None`` when anything may have changed (the channel
reconnected and may have missed some).  The callback runs in the thread
that learnt of the ring and must return quickly; it returns whether a
thread of this process will read the transaction's objects soon (the
invalidation listener then starts loading them); before looking at the
database, the thread answering it calls the listener's ``settle()``, which
returns once a new transaction of any connection sees the rung commits.  Nothing depends on a
ring arriving: dispatchers still poll, so a lost one delays a job by a
poll interval at most.
"""
import logging
import select
import threading

from ZODB.mvccadapter import MVCCAdapter
from ZODB.utils import p64
from ZODB.utils import u64

from plone.app.asyncjobs.engine.log import events
from plone.app.asyncjobs.engine.transactions import backoff


#: The PostgreSQL notification channel of doorbell rings.
PG_CHANNEL = "plone_app_asyncjobs"

#: The most objects a ring's transaction may have stored for the
#: invalidation listener to warm the cache with them (see
#: ``_AdapterListener._warm``).
WARM_LIMIT = 32

#: The longest payload PostgreSQL takes in a notification is 7,999 bytes:
#: a ring of more doorbells than fit is sent in several.
PG_PAYLOAD_LIMIT = 7999

#: The ``application_name`` of the connection a process sends rings on.
SENDER_NAME = "asyncjobs doorbell sender"

#: Seconds a PostgreSQL listener waits for a notification before checking
#: whether it should stop.
_LISTEN_TIMEOUT = 1.0

#: PostgreSQL channels by connection string: each keeps the connection
#: its process sends notifications on.
_pg_channels = {}
_pg_channels_lock = threading.Lock()


def channel_for(db):
    """The wake-up channel for ``db`` (a ``ZODB.DB``), or ``None`` if its
    storage offers none (then dispatchers only poll)."""
    if InvalidationChannel.applies_to(db):
        return InvalidationChannel(db)
    dsn = PostgreSQLChannel.dsn_of(db)
    if dsn is None:
        return None
    with _pg_channels_lock:
        channel = _pg_channels.get(dsn)
        if channel is None:
            channel = _pg_channels[dsn] = PostgreSQLChannel(dsn)
        return channel


def announce(connection, doorbell):
    """Tell the channel of ``connection``'s database that the current
    transaction of ``connection`` rang ``doorbell``."""
    channel = channel_for(connection.db())
    if channel is not None:
        channel.announce(connection, doorbell)


def describe(listener):
    """What a listener returned by a channel listens to, for monitoring;
    ``None`` for no listener."""
    return None if listener is None else listener.describes


class InvalidationChannel:
    """Rings are the invalidations ZODB's MVCC adapter hands its instances.

    The adapter has no public way to observe invalidations, so the
    listener registers itself among the adapter's instances (its
    ``_instances``, guarded by its ``_lock``) and receives their calls
    (``_invalidate(tid, oids)``, ``_invalidateCache()``).  The engine's
    tests pin this: an upgrade of ZODB that changes it fails them.
    """

    def __init__(self, db):
        self.adapter = db._mvcc_storage

    @staticmethod
    def applies_to(db):
        return isinstance(getattr(db, "_mvcc_storage", None), MVCCAdapter)

    def listen(self, ring):
        """Call ``ring`` with every committed transaction's changed oids."""
        return _AdapterListener(self.adapter, ring)

    def announce(self, connection, doorbell):
        """Nothing to do: the commit's invalidations ring."""


class _AdapterListener:
    """Registered like an instance of an MVCC adapter; see :class:`InvalidationChannel`."""

    describes = "invalidations"

    def __init__(self, adapter, ring):
        self.adapter = adapter
        self.ring = ring
        with adapter._lock:
            adapter._instances.add(self)

    def _invalidate(self, tid, oids):
        # Called within other threads' commits: never raise into them.
        try:
            if self.ring(oids):
                self._warm(tid, oids)
        except Exception:
            events.critical("a doorbell ring could not be delivered", exc_info=True)

    def _warm(self, tid, oids):
        """Start loading, all at once, the state after ``tid`` of the
        objects it stored (the new job, the lane it joined), which the
        thread the ring wakes reads first: each would otherwise cost that
        thread a round trip to the storage server.  ZEO's client sends one
        request for a load the thread asks for while this one is under way.
        A large transaction (content changes besides the job) is left
        alone."""
        prefetch = getattr(self.adapter._storage, "prefetch", None)
        if prefetch is not None and len(oids) <= WARM_LIMIT:
            prefetch(oids, p64(u64(tid) + 1))

    def _invalidateCache(self):
        try:
            self.ring(None)
        except Exception:
            events.critical("a doorbell ring could not be delivered", exc_info=True)

    def settle(self):
        # The adapter holds its lock while it hands a transaction's
        # invalidations to every instance, the connections' ones too: once
        # it is free, they have them all.
        with self.adapter._lock:
            pass

    def stop(self):
        with self.adapter._lock:
            instances = getattr(self.adapter, "_instances", None)  # gone once closed
            if instances is not None:
                instances.discard(self)


class PostgreSQLChannel:
    """Rings are PostgreSQL notifications, sent by producers after commit.

    RelStorage keeps its connection string in its adapter's ``_dsn``; the
    engine's tests pin that too.
    """

    def __init__(self, dsn):
        self.dsn = dsn
        self._sender = None
        self._sender_lock = threading.Lock()

    @staticmethod
    def dsn_of(db):
        """The connection string of ``db``'s RelStorage on PostgreSQL, or ``None``."""
        try:
            from relstorage.adapters.postgresql import PostgreSQLAdapter
        except ImportError:  # pragma: no cover - RelStorage is optional
            return None
        adapter = getattr(getattr(db, "storage", None), "_adapter", None)
        return adapter._dsn if isinstance(adapter, PostgreSQLAdapter) else None

    def listen(self, ring):
        """Call ``ring`` with the doorbell oids of every notification."""
        listener = _PostgreSQLListener(self.dsn, ring)
        listener.start()
        return listener

    def announce(self, connection, doorbell):
        """Notify, once the current transaction committed, that it rang ``doorbell``."""
        current = connection.transaction_manager.get()
        try:
            rung = current.data(self)
        except KeyError:
            rung = set()
            current.set_data(self, rung)
            current.addAfterCommitHook(self._notify, (rung,))
        rung.add(doorbell)

    def _notify(self, committed, rung):
        if not committed:
            return
        payloads = _payloads(doorbell._p_oid.hex() for doorbell in rung)
        import psycopg2
        with self._sender_lock:
            for attempt in (1, 2):
                try:
                    self._send(payloads)
                    return
                except psycopg2.Error as error:
                    lost = isinstance(error, (psycopg2.OperationalError,
                                              psycopg2.InterfaceError))
                    if lost:
                        self._close_sender()
                        if attempt == 1:
                            # Cut since the last ring, maybe (a server
                            # restart, an idle timeout): once more on a new
                            # connection, or this ring would wait for a poll.
                            continue
                    # The jobs are committed: a poll will find them.
                    events.warning("could not notify workers of queued jobs; they find "
                                   "them at their next poll", exc_info=True)
                    return

    def _send(self, payloads):
        import psycopg2
        if self._sender is None:
            self._sender = psycopg2.connect(self.dsn, application_name=SENDER_NAME)
            self._sender.autocommit = True
        with self._sender.cursor() as cursor:
            for payload in payloads:
                cursor.execute("SELECT pg_notify(%s, %s)", (PG_CHANNEL, payload))

    def _close_sender(self):
        if self._sender is not None:
            try:
                self._sender.close()
            except Exception:
                pass
            self._sender = None


def _payloads(words):
    """``words`` joined by spaces into payloads of at most
    :data:`PG_PAYLOAD_LIMIT` bytes (the words are ASCII)."""
    payloads, current = [], ""
    for word in words:
        if current and len(current) + 1 + len(word) > PG_PAYLOAD_LIMIT:
            payloads.append(current)
            current = ""
        current = f"{current} {word}" if current else word
    return payloads + [current] if current else payloads


class _PostgreSQLListener(threading.Thread):
    """Listens on :data:`PG_CHANNEL`, reconnecting with back-off; rings
    ``None`` after each (re)connection, since notifications sent while not
    listening are lost."""

    describes = "postgresql notifications"

    def __init__(self, dsn, ring):
        super().__init__(name="asyncjobs doorbell listener", daemon=True)
        self.dsn = dsn
        self.ring = ring
        self._stopping = threading.Event()
        #: Set while a connection listens (for tests and monitoring).
        self.listening = threading.Event()

    def run(self):
        import psycopg2
        failures = 0
        while not self._stopping.is_set():
            connection = None
            try:
                connection = psycopg2.connect(self.dsn, application_name=self.name)
                connection.autocommit = True
                with connection.cursor() as cursor:
                    cursor.execute(f"LISTEN {PG_CHANNEL}")
                failures = 0
                self.listening.set()
                self.ring(None)
                self._receive(connection)
            except psycopg2.Error as error:
                failures += 1
                level = logging.INFO if failures > 1 else logging.WARNING
                events.log(level, "doorbell listener: %s; reconnecting", str(error).strip())
                # At once after losing a connection that listened (its
                # backend was ended, say); then backing off.
                self._stopping.wait(backoff(failures - 1) if failures > 1 else 0)
            except Exception:
                failures += 1
                events.critical("doorbell listener failed; restarting it", exc_info=True)
                self._stopping.wait(backoff(failures))
            finally:
                self.listening.clear()
                if connection is not None:
                    connection.close()

    def _receive(self, connection):
        while not self._stopping.is_set():
            readable, _, _ = select.select([connection], [], [], _LISTEN_TIMEOUT)
            if not readable:
                continue
            connection.poll()
            oids = set()
            while connection.notifies:
                notification = connection.notifies.pop(0)
                oids.update(bytes.fromhex(word) for word in notification.payload.split())
            if oids:
                self.ring(oids)

    def settle(self):
        """Nothing to wait for: RelStorage connections read the database's
        latest state when a transaction begins, and a notification is sent
        after its commit."""

    def stop(self, timeout=5):
        self._stopping.set()
        self.join(timeout)
