"""Commit loops for the engine's own bookkeeping.

User code fails or succeeds once per attempt and its retry policy decides
what comes next.  The engine's bookkeeping (storing a result, handing a job
back) must instead get through; these loops retry it.
"""
import time

from ZODB.POSException import TransactionError

from plone.app.asyncjobs.engine.log import events
from plone.app.asyncjobs.engine.log import trace


try:
    from ZEO.Exceptions import ClientDisconnected
except ImportError:  # pragma: no cover - ZEO is a dependency; kept optional for RelStorage-only sites
    ClientDisconnected = ()

#: Exceptions that must end the worker thread, never be retried or stored.
EXPLOSIVE = (SystemExit, KeyboardInterrupt)

INITIAL_BACKOFF = 5
BACKOFF_INCREMENT = 5
MAX_BACKOFF = 60


def backoff(attempt, initial=INITIAL_BACKOFF, increment=BACKOFF_INCREMENT,
            maximum=MAX_BACKOFF):
    """Return the seconds to wait before retry number ``attempt`` (1-based)."""
    return min(maximum, initial + increment * (attempt - 1))


def retry_forever(work, transaction_manager, description, sleep=time.sleep, giving_up=()):
    """Call ``work()`` and commit until both succeed; return what ``work`` returned.

    Conflicts are retried at once.  Other errors (the database server being
    away, a broken hook) are retried with a growing pause and logged at
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
        except TransactionError:
            transaction_manager.abort()
            if attempt % 5 == 0:
                trace.warning("%s: %d conflicts so far, retrying", description, attempt)
        except Exception:
            transaction_manager.abort()
            if attempt == 1 or attempt % 10 == 0:
                events.critical(
                    "%s failed (attempt %d); retrying", description, attempt,
                    exc_info=True,
                )
            sleep(backoff(attempt))


def retry_conflicts(work, transaction_manager, description, attempts=5):
    """Call ``work()`` and commit, retrying conflicts up to ``attempts`` times.

    Returns what ``work`` returned.  The last conflict, and any other error,
    propagates after the transaction is aborted.
    """
    for attempt in range(1, attempts + 1):
        try:
            transaction_manager.begin()
            value = work()
            transaction_manager.commit()
            return value
        except TransactionError:
            transaction_manager.abort()
            if attempt == attempts:
                raise
            trace.debug("%s: conflict on attempt %d, retrying", description, attempt)
        except BaseException:
            transaction_manager.abort()
            raise
