"""Commit loops for the engine's own bookkeeping.

User code fails or succeeds once per attempt and its retry policy decides
what comes next.  The engine's bookkeeping (storing a result, handing a job
back) must instead get through; these loops retry it.

A conflict is what ``transaction`` itself would retry
(``ITransaction.isRetryableError``: ZODB's conflicts, or an error a data
manager declares retryable); the loops retry it after a short random
pause that grows with the attempts, so that two loops that collided do not
collide again at once.
"""
import random
import time

from transaction.interfaces import TransientError

from plone.app.asyncjobs.engine.counters import Counters
from plone.app.asyncjobs.engine.log import events
from plone.app.asyncjobs.engine.log import trace


try:
    from ZEO.Exceptions import ClientDisconnected
except ImportError:  # pragma: no cover - ZEO is a dependency; kept optional for RelStorage-only sites
    ClientDisconnected = ()

try:
    from psycopg2 import InterfaceError as _PostgreSQLGone
    from psycopg2 import OperationalError as _PostgreSQLUnreachable
except ImportError:  # pragma: no cover - only RelStorage on PostgreSQL needs psycopg2
    _PostgreSQLGone = _PostgreSQLUnreachable = ()

#: Errors that mean "the database server cannot be reached": ZEO's, and
#: those of PostgreSQL's driver that RelStorage lets through.
DISCONNECTED = tuple(error for error in (ClientDisconnected, _PostgreSQLUnreachable,
                                         _PostgreSQLGone) if error)

#: Exceptions that must end the worker thread, never be retried or stored.
EXPLOSIVE = (SystemExit, KeyboardInterrupt)

#: Where a commit conflicted (the keys of :data:`conflicts`): the engine's
#: bookkeeping (the commit loops below: polls, starts, hand-backs,
#: reschedules, stored failures), or the commit storing a job's outcome.
BOOKKEEPING, OUTCOME = "bookkeeping", "outcome"

#: How many commits of this process conflicted, by :data:`BOOKKEEPING` or
#: :data:`OUTCOME` (read by :mod:`.metrics`).  Claims count theirs apart,
#: in their dispatcher's statistics.
conflicts = Counters()

INITIAL_BACKOFF = 5
BACKOFF_INCREMENT = 5
MAX_BACKOFF = 60

#: Seconds: a conflict retry waits up to this much times its attempt
#: number, and never more than :data:`MAX_CONFLICT_PAUSE`.
CONFLICT_PAUSE = 0.005
MAX_CONFLICT_PAUSE = 0.1


def backoff(attempt, initial=INITIAL_BACKOFF, increment=BACKOFF_INCREMENT,
            maximum=MAX_BACKOFF):
    """Return the seconds to wait before retry number ``attempt`` (1-based)."""
    return min(maximum, initial + increment * (attempt - 1))


def conflict_pause(attempt):
    """Return the seconds to wait before retrying conflict number ``attempt``."""
    return random.uniform(0, min(MAX_CONFLICT_PAUSE, CONFLICT_PAUSE * attempt))


def _is_conflict(error, transaction_manager):
    """Whether ``transaction`` would retry ``error``; asked before the abort,
    which forgets the data managers that may say so."""
    return isinstance(error, Exception) and transaction_manager.get().isRetryableError(error)


def count_conflict(error, where):
    """Count ``error`` in :data:`conflicts` under ``where`` if it is a
    conflict (see the module documentation)."""
    if isinstance(error, TransientError):
        conflicts.add(where)


def abort(transaction_manager):
    """Abort the current transaction, whatever happens.

    With the database away an abort can fail too (RelStorage's reaches the
    server); the next ``begin`` tries again.  For error paths, which must
    not end with a second error.
    """
    try:
        transaction_manager.abort()
    except Exception:
        trace.debug("abort failed", exc_info=True)


def retry_forever(work, transaction_manager, description, sleep=time.sleep, giving_up=()):
    """Call ``work()`` and commit until both succeed; return what ``work`` returned.

    Conflicts are retried after a short pause (see the module
    documentation).  Other errors (the database server being away, a broken
    hook) are retried with a growing pause (:func:`backoff`) and logged at
    CRITICAL on the first attempt and every tenth; exceptions of the
    classes in ``giving_up`` propagate (after an abort).
    """
    attempt = 0
    while True:
        attempt += 1
        try:
            transaction_manager.begin()
            value = work()
            transaction_manager.commit()
            return value
        except EXPLOSIVE:
            transaction_manager.abort()
            raise
        except giving_up:
            transaction_manager.abort()
            raise
        except Exception as error:
            conflict = _is_conflict(error, transaction_manager)
            abort(transaction_manager)
            if conflict:
                conflicts.add(BOOKKEEPING)
                if attempt % 5 == 0:
                    trace.warning("%s: %d conflicts so far, retrying", description, attempt)
                sleep(conflict_pause(attempt))
                continue
            if attempt == 1 or attempt % 10 == 0:
                events.critical(
                    "%s failed (attempt %d); retrying", description, attempt,
                    exc_info=True,
                )
            sleep(backoff(attempt))


def retry_conflicts(work, transaction_manager, description, attempts=5, sleep=time.sleep):
    """Call ``work()`` and commit, retrying conflicts up to ``attempts`` times
    (after a short pause: see the module documentation).

    Returns what ``work`` returned.  The last conflict, and any other error,
    propagates after the transaction is aborted.
    """
    for attempt in range(1, attempts + 1):
        try:
            transaction_manager.begin()
            value = work()
            transaction_manager.commit()
            return value
        except BaseException as error:
            conflict = _is_conflict(error, transaction_manager)
            abort(transaction_manager)
            if not conflict:
                raise
            conflicts.add(BOOKKEEPING)
            if attempt == attempts:
                raise
            trace.debug("%s: conflict on attempt %d, retrying", description, attempt)
            sleep(conflict_pause(attempt))
