"""Names for people: of callables, of jobs, of stored objects, of long values.

The monitor commands, the control panel, the REST API and the metrics name
things the same way through these functions.  A job is named after what it
was queued to call (:func:`job_callable`): :func:`job_name` for people,
:func:`job_label` for a metrics label.
"""
import types

from persistent import Persistent

from plone.app.asyncjobs.engine.ids import short_repr


#: How much of a repr is shown before it is cut.
REPR_LIMIT = 10_000
#: How much of a value a job's repr and error messages show.
ABBREVIATED_LIMIT = 60


def _qualified(value):
    """``module.qualname`` of ``value``, or ``None`` if it has no such name."""
    qualname = getattr(value, "__qualname__", None)
    module = getattr(value, "__module__", None)
    if isinstance(qualname, str) and isinstance(module, str) and qualname and module:
        return f"{module}.{qualname}"
    return None


def dotted_name(function):
    """``module.qualname`` of a function or class; a method named by its
    instance (:func:`abbreviated`) and its name; a description otherwise."""
    if isinstance(function, types.MethodType):
        return f"{abbreviated(function.__self__)}.{function.__name__}"
    return _qualified(function) or abbreviated(function)


def callable_name(function):
    """The dotted name of ``function`` for a label, from a bounded set:
    ``module.qualname`` of a function, of a method's function
    (``module.Class.method``, whatever the instance), or of the class of
    any other callable object."""
    if isinstance(function, types.MethodType):
        function = function.__func__
    return _qualified(function) or _qualified(type(function))


def job_callable(job):
    """What ``job`` was queued to call.  A job that calls the function it
    was given through a callable of its own (a job of the Plone service
    passes the function its context first) keeps that function as
    ``func``."""
    func = getattr(job, "func", None)
    return job.callable if func is None else func


def job_name(job):
    """The name of ``job`` for people: :func:`dotted_name` of what it calls."""
    return dotted_name(job_callable(job))


def job_label(job):
    """The name of ``job`` for a metrics label: :func:`callable_name` of
    what it calls."""
    return callable_name(job_callable(job))


def cut(text, limit=REPR_LIMIT):
    """`text`, cut after `limit` characters."""
    return text if len(text) <= limit else text[:limit] + "[...TRUNCATED...]"


def safe_repr(value):
    """``repr(value)``, or a stand-in naming its class if that raises: one
    value of an add-on's class must not break a listing, a command or a
    log line."""
    try:
        return repr(value)
    except Exception as error:
        return f"<unrepresentable {_qualified(type(value))}: {type(error).__name__}>"


def brief_repr(value):
    """A repr for people: stored objects named by class and id, long ones cut."""
    if isinstance(value, Persistent):
        return short_repr(value)
    return cut(safe_repr(value))


def shown_arguments(job, show):
    """``(args, kwargs)`` of ``job`` for people, each value passed through
    ``show``; for arguments that cannot be loaded (a class of theirs is
    gone), what the job's repr says of them, and no keyword arguments."""
    if not job.load_arguments():
        return job.described_arguments(), {}
    return ([show(value) for value in job.args],
            {str(name): show(value) for name, value in job.kwargs.items()})


def abbreviated(value):
    """A repr of ``value`` in at most :data:`ABBREVIATED_LIMIT` characters,
    for a job's repr and error messages: stored objects named by class and
    id, others cut with "..."."""
    if isinstance(value, Persistent):
        return short_repr(value)
    text = safe_repr(value)
    if len(text) <= ABBREVIATED_LIMIT:
        return text
    return text[:ABBREVIATED_LIMIT - 3] + "..."
