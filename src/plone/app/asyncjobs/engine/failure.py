"""Failures that can be stored in the database.

A job that raises gets a Twisted :class:`~twisted.python.failure.Failure` as
its result.  Before storage the failure is cleaned: the traceback object and
frame variables are replaced by their text, so the failure pickles, holds no
live references, and still answers ``getTraceback()``, ``check()`` and
``trap()``.  An exception that cannot be pickled (say, one holding a socket)
or unpickled (say, one whose ``__init__`` needs other arguments) is replaced
by :class:`UnpicklableError` carrying its type name and message, so the
job's outcome is never lost to a pickling error.
"""
import pickle

from twisted.python.failure import Failure


class StoredFailure(Failure):
    """A cleaned failure that ZODB's pickler can store.

    Twisted pickles failures through ``object.__new__``, which ZODB's
    pickler cannot name; this class pickles through :func:`_restore`.
    """

    def __reduce__(self):
        return (_restore, (self.__getstate__(),))


def _restore(state):
    failure = StoredFailure.__new__(StoredFailure)
    failure.__setstate__(state)
    return failure


class UnpicklableError(Exception):
    """Stands in for an exception that could not be stored as it was."""


def capture(exception=None):
    """Return a storable failure for ``exception``, or for the one being handled.

    Call it from an ``except`` block without arguments, or with an exception
    instance.
    """
    return storable(Failure(exception) if exception is not None else Failure())


def storable(failure):
    """Return ``failure`` cleaned so that it can be stored (see the module doc)."""
    if isinstance(failure, StoredFailure):
        return failure
    failure.cleanFailure()
    try:
        # Loading too: an exception whose __init__ needs other arguments
        # than its args pickles, but would make the job unloadable.
        pickle.loads(pickle.dumps(failure))
    except Exception:
        stand_in = Failure(
            UnpicklableError(
                f"{_qualified_name(failure.type)}: {failure.getErrorMessage()}"
            )
        )
        stand_in.cleanFailure()
        stand_in.original_traceback = failure.getTraceback()
        failure = stand_in
    return _restore(failure.__getstate__())


def is_failure(value):
    """Tell whether a job result is a failure."""
    return isinstance(value, Failure)


def traceback_text(failure, detail="default"):
    """Return the failure's traceback as text (``brief``, ``default`` or ``verbose``)."""
    text = getattr(failure, "original_traceback", None)
    if text is not None:
        return text
    return failure.getTraceback(detail=detail)


def summary(failure):
    """``module.ExceptionClass: message`` of a failure, in one line."""
    return f"{_qualified_name(failure.type)}: {failure.getErrorMessage()}"


def _qualified_name(cls):
    return f"{cls.__module__}.{cls.__qualname__}"
