"""Attributes kept in a compact form in their object's record.

A job's record is written up to three times per run (claim, start,
outcome) and read by every worker thread that looks at it, so the size
of its pickle matters: an aware datetime pickles as 13 objects (105
bytes), a ``UUID`` as 8; the same instant as integer microseconds, or the
UUID's 16 bytes, as one.  A :class:`CompactAttribute` stores the compact
form under another name and gives the value back in its usual type.

Values that an earlier version stored in their usual type, under the
public name, are moved to the stored name when the object loads
(:func:`rename_legacy`) and read back as they are.
"""
import functools
import uuid

from plone.app.asyncjobs.engine.clock import from_microseconds
from plone.app.asyncjobs.engine.clock import to_microseconds


class CompactAttribute:
    """A data descriptor: a value is kept as ``compress(value)``, of
    ``compact_type``, in the instance attribute ``stored_name``, and read
    back with ``expand``.  ``None`` is kept as it is, and so is a stored
    value of another type (one an earlier version stored) when read."""

    def __init__(self, stored_name, compact_type, compress, expand):
        self.stored_name = stored_name
        self.compact_type = compact_type
        self.compress = compress
        self.expand = expand

    def __get__(self, instance, owner=None):
        if instance is None:
            return self
        stored = getattr(instance, self.stored_name)
        return self.expand(stored) if isinstance(stored, self.compact_type) else stored

    def __set__(self, instance, value):
        setattr(instance, self.stored_name, None if value is None else self.compress(value))


def instant(stored_name):
    """An aware datetime kept as integer microseconds since the epoch; read
    back in UTC."""
    return CompactAttribute(stored_name, int, to_microseconds, from_microseconds)


def uuid_value(stored_name):
    """A ``uuid.UUID`` kept as its 16 bytes; read back as a UUID.  Other
    values (zc.async let applications set anything) are kept as they are."""
    return CompactAttribute(
        stored_name, bytes,
        lambda value: value.bytes if isinstance(value, uuid.UUID) else value,
        lambda stored: uuid.UUID(bytes=stored))


def rename_legacy(cls, state):
    """Move, in the ``state`` dict being loaded into an instance of
    ``cls``, values stored under the public name of one of its compact
    attributes to the attribute's stored name."""
    stored_names = _compact_attributes(cls)
    for name in stored_names.keys() & state.keys():
        state[stored_names[name]] = state.pop(name)


@functools.cache
def _compact_attributes(cls):
    """``{public name: stored name}`` of the compact attributes of ``cls``."""
    found = {}
    for name in dir(cls):
        attribute = getattr(cls, name, None)
        if isinstance(attribute, CompactAttribute):
            found[name] = attribute.stored_name
    return found
