"""Read ZODB records without importing their classes.

Objects whose classes are gone (zc.async's, on Python 3) load as broken
objects that can be neither changed nor saved, and loading them fills the
connection's cache.  To survey them, this module reads their records
straight from the storage and unpickles each with every class and function
replaced by a :class:`Stub` (a placeholder that keeps the dotted name and
whatever the pickle gave it) and every reference to another record
replaced by a :class:`Reference`.  Nothing is imported, nothing is cached,
and old Python 2 pickles read too (strings that are not ASCII become
``bytes``, as ZODB reads them).
"""
import collections
import copyreg
import io

from ZODB.utils import load_current
from zodbpickle import pickle


#: The harmless building blocks pickles name, under their Python 2 and 3
#: module names; anything else becomes a stub (``copyreg._reconstructor``
#: becomes :func:`_reconstruct`).
_SAFE = {
    (module, name): ("builtins", name)
    for module in ("__builtin__", "builtins")
    for name in ("object", "set", "frozenset", "list", "dict", "tuple", "bytes",
                 "bytearray", "str", "int", "float", "complex", "bool")
}


class Stub:
    """Stands for a class or function a pickle names; see :func:`stub_class`.

    Instances keep what the pickle gave them: ``stub_args`` (arguments of
    the constructor call) and ``stub_state`` (what ``__setstate__`` got).
    """

    stub_args = ()
    stub_state = None
    #: What the pickle added as to a list or a dict (of a subclass of one).
    stub_items = ()

    def __new__(cls, *args, **kwargs):
        instance = super().__new__(cls)
        instance.stub_args = args
        return instance

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        self.stub_state = state

    def __setitem__(self, key, value):
        self.stub_items = (*self.stub_items, (key, value))

    def append(self, value):
        self.stub_items = (*self.stub_items, value)

    def extend(self, values):
        self.stub_items = (*self.stub_items, *values)

    @classmethod
    def dotted_name(cls):
        return f"{cls.__module__}.{cls.__qualname__}"


def stub_class(module, name):
    """A new :class:`Stub` subclass named ``module.name``."""
    return type(name, (Stub,), {"__module__": module, "__qualname__": name})


def dotted_name(value):
    """``module.name`` of a stub class, or of a stub's class; else ``None``."""
    if isinstance(value, type) and issubclass(value, Stub):
        return value.dotted_name()
    if isinstance(value, Stub):
        return type(value).dotted_name()
    return None


Reference = collections.namedtuple("Reference", "database oid class_name")
Reference.__doc__ = """A reference to a record: ``database`` is ``None`` for
the database of the record that holds it; ``class_name`` is ``None`` when
the reference does not say."""


class _Unpickler(pickle.Unpickler):

    def __init__(self, data):
        super().__init__(io.BytesIO(data), encoding="ASCII", errors="bytes")
        self._stubs = {}

    def find_class(self, module, name):
        if module in ("copy_reg", "copyreg") and name == "_reconstructor":
            return _reconstruct
        safe = _SAFE.get((module, name))
        if safe is not None:
            return super().find_class(*safe)
        key = (module, name)
        if key not in self._stubs:
            self._stubs[key] = stub_class(module, name)
        return self._stubs[key]

    def persistent_load(self, pid):
        return _reference(pid)


def _reconstruct(cls, base, state):
    """``copyreg._reconstructor``, which Python 2 pickles of instances of
    subclasses of builtins (a ``dict`` subclass, say) call: for a stub
    class, a stub keeping ``state`` as its arguments."""
    if isinstance(cls, type) and issubclass(cls, Stub):
        return cls(state)
    return copyreg._reconstructor(cls, base, state)


def _reference(pid):
    """The :class:`Reference` for a persistent id in any of ZODB's forms."""
    if isinstance(pid, (bytes, str)):
        return Reference(None, _oid(pid), None)
    if isinstance(pid, tuple):
        oid, klass = pid
        return Reference(None, _oid(oid), _class_name(klass))
    kind, arguments = pid
    if kind == "m":
        database, oid, klass = arguments
        return Reference(database, _oid(oid), _class_name(klass))
    if kind == "n":
        database, oid = arguments
        return Reference(database, _oid(oid), None)
    if kind == "w":
        database = arguments[1] if len(arguments) > 1 else None
        return Reference(database, _oid(arguments[0]), None)
    raise ValueError(f"unknown kind of persistent reference: {pid!r}")


def _oid(value):
    return value.encode("latin-1") if isinstance(value, str) else value


def _class_name(klass):
    if isinstance(klass, tuple):  # (class, arguments of __new__)
        klass = klass[0]
    return dotted_name(klass)


Record = collections.namedtuple("Record", "oid class_name state")
Record.__doc__ = "A record read without its classes: its class name and its state."


def read(storage, oid):
    """Read the current record ``oid`` of ``storage`` as a :class:`Record`."""
    data, _ = load_current(storage, oid)
    return parse(oid, data)


def parse(oid, data):
    """The :class:`Record` for ``data``, a record's two pickles (its class,
    then its state), written by Python 2 or 3."""
    unpickler = _Unpickler(data)
    klass = unpickler.load()
    state = unpickler.load()
    return Record(oid, _class_name(klass), state)


def references(value):
    """Every :class:`Reference` in ``value`` (a record's state), depth first."""
    pending = [value]
    seen = set()
    while pending:
        item = pending.pop()
        if isinstance(item, Reference):
            yield item
        elif isinstance(item, (list, tuple, set, frozenset)):
            pending.extend(item)
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, Stub) and id(item) not in seen:
            seen.add(id(item))
            pending.append(item.stub_args)
            pending.append(item.stub_state)
            pending.append(item.stub_items)
