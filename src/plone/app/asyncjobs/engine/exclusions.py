"""Jobs a process skips for a while after it failed to claim them.

A claim whose commit fails for a reason other than a conflict or a lost
connection may have met a job this process cannot store back (its
callable's class cannot be imported here, say): trying it at every claim
would block the jobs behind it.  Such a job stays pending, visible to
operators and claimable by other processes, and this process skips it.
The error may also have been passing (a storage error, a server that was
restarted), and a process may be the only worker: so it tries the job
again later, after :data:`FIRST_PAUSE`, then twice as long after each
further failure, up to :data:`LONGEST_PAUSE`.  A job is never left for
ever.
"""
import threading
from datetime import timedelta

from plone.app.asyncjobs.engine.clock import utcnow


#: How long a job is skipped after its first failed claim.
FIRST_PAUSE = timedelta(minutes=1)
#: The longest a job is skipped, however often its claims failed.
LONGEST_PAUSE = timedelta(hours=1)


class ClaimExclusions:
    """The ``(oid, database name)`` of jobs skipped for now: ``key in
    exclusions`` is true until the job's pause has passed."""

    def __init__(self):
        self._lock = threading.Lock()
        self._failures = {}
        self._until = {}

    def add(self, key):
        """Note a failed claim of job ``key``; return how long it is skipped."""
        with self._lock:
            failures = self._failures.get(key, 0) + 1
            self._failures[key] = failures
            pause = min(FIRST_PAUSE * 2 ** min(failures - 1, 16), LONGEST_PAUSE)
            self._until[key] = utcnow() + pause
        return pause

    def claimed(self, keys):
        """Forget the failed claims of the jobs ``keys``, claimed after all."""
        if self._failures:
            with self._lock:
                for key in keys:
                    self._failures.pop(key, None)
                    self._until.pop(key, None)

    def __contains__(self, key):
        until = self._until.get(key)
        return until is not None and utcnow() < until

    def __bool__(self):
        """Whether some job is skipped now (claims then look at each
        candidate's key); the pauses that passed are forgotten."""
        if not self._until:
            return False
        now = utcnow()
        with self._lock:
            for key in [key for key, until in self._until.items() if until <= now]:
                del self._until[key]
            return bool(self._until)
