"""Where a job keeps its arguments.

Most jobs are called with a few strings, numbers, dates or persistent
objects.  Such arguments are kept in the job's own record, in an
:class:`OwnedList` and an :class:`OwnedDict` whose changes mark the job
changed: queuing the job stores one record, and loading it loads them.

Two kinds of arguments get records of their own instead (a
``PersistentList`` and a ``PersistentMapping``, as jobs stored by earlier
versions have):

* instances of other classes: one day their class may be renamed or gone,
  and loading them fail.  Kept apart, they cannot make the job itself
  unloadable: a worker still loads the job and fails it, saying why,
  instead of skipping it for ever;
* large values (over :data:`INLINE_LIMIT`): the job's record is written
  at every change of status, the arguments' only once.

The choice is made when the job is made, from the arguments given then;
both kinds behave as a list and a dict.
"""
import datetime
import math
from decimal import Decimal

from persistent import Persistent
from persistent.list import PersistentList
from persistent.mapping import PersistentMapping


#: Above this many bytes (roughly: the length of strings and bytes, 8 for
#: any other value), arguments get records of their own.
INLINE_LIMIT = 2048

_SCALARS = frozenset({
    type(None), bool, int, float, complex, str, bytes, Decimal,
    datetime.date, datetime.time, datetime.timedelta,
})
_SEQUENCES = frozenset({list, tuple, set, frozenset})


def containers(owner, args, kwargs):
    """``(args, kwargs)`` containers for job ``owner``, holding copies of
    ``args`` and ``kwargs``: owned by it if they can be (see the module
    doc), else persistent records of their own."""
    budget = _Budget(INLINE_LIMIT)
    if all(budget.admits(value) for value in args) and all(
            budget.admits(name) and budget.admits(value) for name, value in kwargs.items()):
        return OwnedList(owner, args), OwnedDict(owner, kwargs)
    return PersistentList(args), PersistentMapping(kwargs)


def is_plain(value):
    """Whether ``value`` is plain data, of any size: the kinds of values an
    owned container takes, which pickle without fail (persistent objects
    as references)."""
    return _Budget(math.inf).admits(value)


class _Budget:
    """Counts down the size of plain-data values; refuses anything else."""

    def __init__(self, limit):
        self.left = limit

    def admits(self, value):
        kind = type(value)
        if kind in (str, bytes):
            self.left -= len(value)
        elif kind in _SCALARS or isinstance(value, Persistent):
            self.left -= 8  # a persistent object is only referred to
        elif kind is datetime.datetime:
            self.left -= 8
            if not (value.tzinfo is None or type(value.tzinfo) is datetime.timezone):
                return False  # a time zone class of some library
        elif kind in _SEQUENCES:
            if not all(self.admits(item) for item in value):
                return False
        elif kind is dict:
            if not all(self.admits(key) and self.admits(item) for key, item in value.items()):
                return False
        else:
            return False
        return self.left >= 0


def stored_form(container):
    """What to store of a container in its owner's record: a plain ``list``
    or ``dict`` copy of an owned container, any other container as it is;
    ``None`` for an empty ``list`` or ``dict``, which the owner leaves out
    of its record, passing a new one to :func:`owned` when loaded."""
    if isinstance(container, _Owned):
        container = container.plain_type(container)
    if type(container) in (list, dict) and not container:
        return None
    return container


def owned(owner, stored):
    """The container to hold, for ``owner``, a value :func:`stored_form`
    returned."""
    if type(stored) is list:
        return OwnedList(owner, stored)
    if type(stored) is dict:
        return OwnedDict(owner, stored)
    return stored


class _Owned:
    """A container kept in the record of its owner, a persistent object,
    which every change marks changed.  Copied or pickled, it is a plain
    container of its :attr:`plain_type`."""

    __slots__ = ()
    plain_type = None

    def __init__(self, owner, items=()):
        super().__init__(items)
        self._owner = owner

    def __reduce__(self):
        return self.plain_type, (self.plain_type(self),)

    def __copy__(self):
        return self.plain_type(self)


class OwnedList(_Owned, list):
    """A list kept in its owner's record (see :class:`_Owned`)."""

    __slots__ = ("_owner",)
    plain_type = list


class OwnedDict(_Owned, dict):
    """A dict kept in its owner's record (see :class:`_Owned`)."""

    __slots__ = ("_owner",)
    plain_type = dict


def _changing(method):
    def changing(self, *args, **kwargs):
        result = method(self, *args, **kwargs)
        self._owner._p_changed = True
        return result

    changing.__name__ = changing.__qualname__ = method.__name__
    changing.__doc__ = method.__doc__
    return changing


def _mark_changes(cls, names):
    """Make the methods ``names`` of ``cls`` mark its owner changed."""
    for name in names:
        setattr(cls, name, _changing(getattr(cls.plain_type, name)))


_mark_changes(OwnedList, ("__setitem__", "__delitem__", "__iadd__", "__imul__", "append",
                          "clear", "extend", "insert", "pop", "remove", "reverse", "sort"))
_mark_changes(OwnedDict, ("__setitem__", "__delitem__", "__ior__", "clear", "pop", "popitem",
                          "setdefault", "update"))
