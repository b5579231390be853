"""Names for people: of callables, of stored objects, of long values.

The monitor commands, the control panel and the REST API name things the
same way through these functions.
"""
import types

from persistent import Persistent

from plone.app.asyncjobs.engine.ids import short_repr


#: How much of a repr is shown before it is cut.
REPR_LIMIT = 10_000


def dotted_name(function):
    """``module.qualname`` of a function or class; a description otherwise."""
    if isinstance(function, types.MethodType):
        return f"{brief_repr(function.__self__)}.{function.__name__}"
    qualname = getattr(function, "__qualname__", None)
    module = getattr(function, "__module__", None)
    if qualname and module:
        return f"{module}.{qualname}"
    return brief_repr(function)


def cut(text, limit=REPR_LIMIT):
    """`text`, cut after `limit` characters."""
    return text if len(text) <= limit else text[:limit] + "[...TRUNCATED...]"


def brief_repr(value):
    """A repr for people: stored objects named by class and id, long ones cut."""
    if isinstance(value, Persistent):
        return short_repr(value)
    return cut(repr(value))
