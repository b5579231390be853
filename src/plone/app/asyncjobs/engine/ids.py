"""Identify persistent objects across processes and databases.

Monitoring, logs and the REST API name a job by ``(oid, database name)``
where ``oid`` is the ZODB object id as an integer.  ``ZODB.utils.p64`` turns
the integer back into the 8-byte oid.
"""
from ZODB.utils import p64
from ZODB.utils import u64


def object_id(obj):
    """Return ``(integer oid, database name)``; ``(None, None)`` if unsaved."""
    jar = getattr(obj, "_p_jar", None)
    oid = getattr(obj, "_p_oid", None)
    if jar is None or oid is None:
        return (None, None)
    return (u64(oid), jar.db().database_name)


def load(connection, oid, database_name=None):
    """Load the object ``(oid, database_name)`` through ``connection``."""
    if database_name is not None and database_name != connection.db().database_name:
        connection = connection.get_connection(database_name)
    return connection.get(p64(oid))


def short_repr(obj):
    """Return ``module.Class (oid N, db 'name')`` for persistent objects."""
    cls = type(obj)
    oid, database_name = object_id(obj)
    where = "unsaved" if oid is None else f"oid {oid}, db {database_name!r}"
    return f"{cls.__module__}.{cls.__qualname__} ({where})"
