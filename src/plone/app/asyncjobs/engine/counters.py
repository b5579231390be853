"""Counters that many threads increment at once."""
import collections
import threading


class Counters(collections.Counter):
    """A :class:`collections.Counter` for counts kept by several threads.

    ``counters[key] += n`` reads, then writes: two threads doing it at once
    may lose a count.  :meth:`add` does it under a lock, and
    :meth:`snapshot` copies the counts under the same lock (iterating
    while another thread adds a key would fail).
    """

    def __init__(self):
        super().__init__()
        self._lock = threading.Lock()

    def add(self, key, count=1):
        """Add ``count`` to ``key``'s count, atomically."""
        with self._lock:
            self[key] += count

    def snapshot(self):
        """A consistent copy of the counts, as a plain dict."""
        with self._lock:
            return dict(self)
