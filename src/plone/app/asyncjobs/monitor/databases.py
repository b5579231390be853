"""The ZODB databases the monitor commands report on.

The application registers each database it opens under a name, and
unregisters it before closing it; ``dbinfo`` and ``zeostatus`` report on
what is registered at the time they run.  In Zope, the integration code
registers the databases Zope opened (``Zope2.DB`` and the other mounted
ones, under their zope.conf names); a standalone process registers its own.

The registry is process-wide and thread-safe.
"""

import threading

from ZODB.ActivityMonitor import ActivityMonitor


_lock = threading.Lock()
_registered = {}


def register_database(name, db):
    """Register the `ZODB.DB` `db` under `name`, replacing any previous one.

    `name` is what a monitor user types to select the database, so it must
    be a non-empty word without whitespace, and not ``-``, which stands for
    "all databases"; otherwise `ValueError` is raised.

    The load and store counts ``dbinfo`` shows come from the database's
    activity monitor, so a database without one gets a
    `ZODB.ActivityMonitor.ActivityMonitor` (one hour of history); an
    existing one is kept.
    """
    if name == "-" or name.split() != [name]:
        raise ValueError(
            f"Invalid monitor database name {name!r}: use one word, not '-'"
        )
    if db.getActivityMonitor() is None:
        db.setActivityMonitor(ActivityMonitor())
    with _lock:
        _registered[name] = db


def unregister_database(name):
    """Forget the database registered under `name`, if there is one.

    The database itself is left alone: it stays open and keeps its activity
    monitor.
    """
    with _lock:
        _registered.pop(name, None)


def databases():
    """Return the registered databases as a new dict, name to `ZODB.DB`.

    The dict is ordered by name and does not change with later
    registrations.
    """
    with _lock:
        return dict(sorted(_registered.items()))
