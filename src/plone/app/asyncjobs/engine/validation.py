"""Checks that refuse a job a worker could not run, where it is made.

A worker loads a job's callable by name and its arguments from the
database: what it could not import or store is refused when the job is
made or queued, with an error naming the part, rather than when a worker
tries.
"""
import math
import pickle
import sys
import types
from io import BytesIO

from persistent import Persistent

from plone.app.asyncjobs.engine import arguments
from plone.app.asyncjobs.engine.exceptions import BadStatusError
from plone.app.asyncjobs.engine.interfaces import IJob
from plone.app.asyncjobs.engine.naming import abbreviated
from plone.app.asyncjobs.engine.status import NEW


def check_callable(candidate):
    """Return ``candidate`` if a worker process could call it, else raise.

    Workers load the callable by reference, so it must be importable:
    a module-level function, a builtin, a method of a picklable object
    (persistent objects included), a callable picklable object, or a job.
    Lambdas and functions defined inside functions are refused here, where
    the mistake is made, rather than when a worker tries to load them.
    """
    if not callable(candidate):
        raise TypeError(f"a job needs a callable, not {candidate!r}")
    function = getattr(candidate, "__func__", candidate)
    if isinstance(function, types.FunctionType):
        qualname = function.__qualname__
        if "<lambda>" in qualname or "<locals>" in qualname:
            raise ValueError(
                f"{qualname} cannot be a job: workers load callables by "
                "name, so use a module-level function (pass values as "
                "job arguments instead of closing over them)"
            )
        if function.__module__ == "__main__":
            raise ValueError(
                f"{qualname} is defined in the __main__ script; worker "
                "processes cannot import it: move it to a module"
            )
        if function is candidate and not _importable(function):
            raise ValueError(
                f"{function.__module__}.{qualname} cannot be imported by name, "
                "so a worker could not load it"
            )
    return candidate


def is_number(value):
    """Whether ``value`` is an ``int`` or a ``float`` (not a ``bool``)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_finite_number(value):
    """Whether ``value`` is a number a float holds: not NaN, not infinite,
    not an int too large for a float."""
    if not is_number(value):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def check_log_level(level):
    """Return ``level`` if it is a logging level (an integer) or ``None``,
    else raise ``TypeError``: a job logs its failure at it."""
    if level is not None and (not isinstance(level, int) or isinstance(level, bool)):
        raise TypeError(f"failure_log_level must be a logging level (an integer "
                        f"such as logging.WARNING) or None, not {level!r}")
    return level


def check_new_callback(callback, lineage, failure_log_level=None):
    """Raise unless ``callback`` can become a callback of the first job of
    ``lineage`` (that job, then the jobs it is part of, outwards).

    It must be new, not part of another job already, and none of the jobs
    of ``lineage`` (a job that is its own callback, or a cycle, would wait
    for itself for ever); ``failure_log_level`` must be a logging level.
    A chooser (``add_callbacks``) is made for the call and not checked.
    """
    if callback.status != NEW:
        raise BadStatusError(f"a callback must be new; {callback!r} is {callback.status}")
    if IJob.providedBy(callback):
        owner = callback.owning_job()
        if owner is not None:
            raise ValueError(f"{callback!r} is part of {owner!r} already (its "
                             "callable or one of its callbacks)")
        if any(job is callback for job in lineage):
            raise ValueError(f"{callback!r} cannot be a callback of this job: "
                             "it is that job, or a job it is part of")
    check_log_level(failure_log_level)


def _importable(function):
    """Whether ``function`` (a function or a builtin) is found by its name:
    then it is pickled by reference, without fail."""
    if not isinstance(function, (types.FunctionType, types.BuiltinFunctionType)):
        return False
    found = sys.modules.get(function.__module__)
    for part in function.__qualname__.split("."):
        found = getattr(found, part, None)
    return found is function


class _ReferencePickler(pickle.Pickler):
    """Pickles like ZODB does: persistent objects become references."""

    def persistent_id(self, obj):
        if isinstance(obj, Persistent):
            return id(obj)
        return None


class _ReferenceUnpickler(pickle.Unpickler):
    """Loads what :class:`_ReferencePickler` wrote; references load as ``None``."""

    def persistent_load(self, pid):
        return None


def check_loadable(value):
    """Raise unless ``value`` is stored as ZODB would store it and loads
    back.  For a job's result, kept in the job's own record: a value that
    does not load back would make the job unloadable, and every listing
    that shows it.  Plain data and persistent objects are not tried."""
    if isinstance(value, Persistent) or arguments.is_plain(value):
        return
    data = BytesIO()
    _ReferencePickler(data, protocol=3).dump(value)
    data.seek(0)
    _ReferenceUnpickler(data).load()


def check_picklable(job):
    """Raise ``ValueError`` naming the part of ``job`` that cannot be stored.

    Only the parts that might fail are pickled to find out: not a function
    importable by name, nor plain-data arguments (see :mod:`.arguments`).
    """
    # The label of a part is made only if the part has to be tried: this
    # runs for every job queued, mostly a function with plain arguments.
    _check_part(job, "callable", None, job._callable, _importable)
    for index, value in enumerate(job.args):
        _check_part(job, "argument {}", index, value, arguments.is_plain)
    for name, value in job.kwargs.items():
        _check_part(job, "keyword argument {!r}", name, value, arguments.is_plain)


def _check_part(job, label, key, value, stores_safely):
    """Raise for :func:`check_picklable` unless ``value``, the part of
    ``job`` that ``label.format(key)`` names, is safe to store by
    ``stores_safely`` or pickles."""
    if stores_safely(value):
        return
    try:
        _ReferencePickler(BytesIO(), protocol=3).dump(value)
    except Exception as error:
        raise ValueError(
            f"cannot queue {job!r}: its {label.format(key)} ({abbreviated(value)}) cannot "
            f"be stored in the database: {error}"
        ) from error
