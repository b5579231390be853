"""What a dispatcher knows of its own connection to the database.

A dispatcher finds a sibling dead when it saw no ping from it for the
sibling's ``ping_death_interval`` (see :mod:`.dispatchers`).  It can only
have seen pings while it was itself connected and running: after a storage
outage, or after its own process was paused, the pings it missed are no
sign of death.  :class:`Connectivity` tells since when a dispatcher has
been watching without a break, as far as it can tell: a poll that failed,
a worker thread that found the database unreachable, or a poll that came
much later than due (the process was paused or starved) each start the
watch again.
"""
import threading


class Connectivity:
    """Since when this dispatcher has been connected and polling.

    ``late`` (a timedelta) is how much later than the previous one a poll
    may start before the gap counts as a break.
    """

    def __init__(self, late):
        self._late = late
        self._lock = threading.Lock()
        self._broken = False
        self._last_poll = None
        self._since = None

    def broken(self):
        """Record that the database could not be reached (any thread)."""
        with self._lock:
            self._broken = True

    def poll_starts(self, now):
        """Record that a poll starts at ``now``; return since when this
        dispatcher has been watching without a break (``None``: since
        before anything it remembers)."""
        with self._lock:
            late = self._last_poll is not None and now - self._last_poll > self._late
            if self._broken or late:
                self._since = now
            self._broken = False
            self._last_poll = now
            return self._since


def catch_up(db):
    """Make the next transaction begun on a connection of ``db`` see every
    commit the storage server had finished when this was called.

    A ZEO client learns of other clients' commits from the server's
    invalidation messages, which its I/O thread reads in its own time: after
    this process was paused, a new transaction may still see the state from
    before the pause.  A round trip to the server returns after every
    message sent before it, so the client is up to date afterwards.  Other
    storages (RelStorage, FileStorage) look for changes at each new
    transaction themselves.  Does nothing while the client is disconnected
    (rather than wait for the server).
    """
    storage = db.storage
    ping = getattr(storage, "ping", None)
    connected = getattr(storage, "is_connected", lambda: True)
    if ping is not None and connected():
        ping()
