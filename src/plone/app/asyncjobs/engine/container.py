"""A persistent container with the read-only half of the mapping protocol.

Engine containers (queues by name, dispatcher records by UUID, agents by
name, quotas by name) control how items get in and out; reading them works
like a dict.
"""
from BTrees.OOBTree import OOBTree
from persistent import Persistent

from plone.app.asyncjobs.engine.trees import read_as_current


class Container(Persistent):
    """Items in an ``OOBTree``; subclasses add the ways to change them."""

    parent = None

    def __init__(self):
        self._items = OOBTree()

    def __getitem__(self, key):
        return self._items[key]

    def get(self, key, default=None):
        return self._items.get(key, default)

    def __contains__(self, key):
        return key in self._items

    def __iter__(self):
        return iter(self._items)

    def __len__(self):
        return len(self._items)

    def keys(self):
        return self._items.keys()

    def values(self):
        return self._items.values()

    def items(self):
        return self._items.items()

    def read_as_current(self):
        """Make the current transaction conflict with any commit that
        changed which items this holds since the transaction read them."""
        read_as_current(self._items)
