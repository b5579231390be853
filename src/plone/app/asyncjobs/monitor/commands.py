"""Monitor commands about the process and its ZODB databases.

None of them needs Zope: ``monitor`` looks at the process, ``dbinfo`` and
``zeostatus`` at the databases registered in `.databases`.  They answer in
JSON (see `write_json`).  ``configure.zcml`` registers them as plugins.
"""

import gc
import json
import math
import os
import threading
import time
from datetime import datetime
from datetime import timezone

from ZEO.ClientStorage import ClientStorage
from ZODB.TimeStamp import TimeStamp
from ZODB.utils import z64
from zope.interface import implementer
from zope.interface import provider

from . import databases as database_registry
from .interfaces import CommandError
from .interfaces import IMonitorPlugin


#: The DATABASE argument that selects every registered database.
ALL_DATABASES = "-"


def write_json(connection, value):
    """Write `value` to `connection` as JSON, the monitor's output format.

    Keys are sorted and nested values indented by four spaces, so output
    is stable and readable; a newline ends it.
    """
    connection.write(json.dumps(value, sort_keys=True, indent=4) + "\n")


# -- monitor ------------------------------------------------------------------


@provider(IMonitorPlugin)
def monitor(connection):
    """Show the health of this process.

    Output (JSON):

    - "pid": the process id;
    - "uptime seconds": how long the process has been running;
    - "threads": the number of Python threads;
    - "monitor connections": the clients connected to this monitor server,
      this one included;
    - "resident memory kB" and "virtual memory kB": VmRSS and VmSize from
      /proc/self/status;
    - "gc objects": the number of objects the garbage collector tracks.

    Values the system does not provide (no /proc) are null.
    """
    memory = _memory_kilobytes()
    write_json(
        connection,
        {
            "pid": os.getpid(),
            "uptime seconds": _process_uptime(),
            "threads": threading.active_count(),
            "monitor connections": connection.open_connections,
            "resident memory kB": memory.get("VmRSS"),
            "virtual memory kB": memory.get("VmSize"),
            "gc objects": len(gc.get_objects()),
        },
    )


def _memory_kilobytes():
    """Return VmRSS and VmSize, in kB, by name; empty without /proc."""
    try:
        with open("/proc/self/status") as status:
            lines = status.readlines()
    except OSError:
        return {}
    sizes = {}
    for line in lines:
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmSize"):
            sizes[name] = int(value.split()[0])
    return sizes


def _process_uptime():
    """Return the seconds since this process started; None without /proc."""
    try:
        with open("/proc/self/stat") as stat:
            # The command name, field 2, is in parentheses and may contain
            # anything, so count fields from its closing parenthesis.
            fields_from_3 = stat.read().rpartition(")")[2].split()
        with open("/proc/uptime") as uptime:
            system_uptime = float(uptime.read().split()[0])
    except OSError:
        return None
    # Field 22: the start time, in clock ticks after the system booted.
    started = int(fields_from_3[22 - 3]) / os.sysconf("SC_CLK_TCK")
    return round(system_uptime - started, 2)


# -- dbinfo -------------------------------------------------------------------


@implementer(IMonitorPlugin)
class DatabaseInfo:
    """Show ZODB database statistics.

    Usage: dbinfo [DATABASE [SECONDS]]

    DATABASE is the name of a registered database, or "-" (the default)
    for all of them.  Output (JSON), for each database:

    - "size bytes": the approximate size of its storage;
    - "objects": the approximate number of objects in its storage;
    - "cache": the object caches of its connections: how many
      ("connections"), the objects and the non-ghost objects they hold
      ("objects", "non-ghost objects"), and the configured limits per
      connection ("target objects per connection", "target bytes per
      connection");
    - "activity": the "loads", "stores" and closed "connections" over the
      last "seconds" seconds.

    The activity covers the last SECONDS seconds if given, otherwise the
    time since the previous dbinfo for that database; at most the history
    its activity monitor keeps (one hour by default), which is also what
    the first dbinfo covers.  ZODB counts a connection's loads and stores
    when the connection closes, so the work of connections still open
    shows later.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._previous_report = {}  # database name -> time.time()

    def __call__(self, connection, database=ALL_DATABASES, seconds=None):
        selected = _select_databases(database)
        window = None if seconds is None else _positive_seconds(seconds)
        now = time.time()
        report = {}
        for name, db in selected.items():
            with self._lock:
                if window is None:
                    since = self._previous_report.get(name, -math.inf)
                else:
                    since = now - window
                self._previous_report[name] = now
            report[name] = _database_report(db, since, now)
        write_json(connection, report)


#: The ``dbinfo`` plugin; it remembers when it last reported on each database.
dbinfo = DatabaseInfo()


def _database_report(db, since, now):
    caches = db.cacheDetailSize()
    activity_monitor = db.getActivityMonitor()
    return {
        "size bytes": db.getSize(),
        "objects": db.objectCount(),
        "cache": {
            "connections": len(caches),
            "objects": sum(cache["size"] for cache in caches),
            "non-ghost objects": sum(cache["ngsize"] for cache in caches),
            "target objects per connection": db.getCacheSize(),
            "target bytes per connection": db.getCacheSizeBytes(),
        },
        "activity": (
            None
            if activity_monitor is None
            else _activity(activity_monitor, since, now)
        ),
    }


def _activity(activity_monitor, since, now):
    start = max(since, now - activity_monitor.getHistoryLength())
    counts = activity_monitor.getActivityAnalysis(start, now, divisions=1)[0]
    return {
        "seconds": round(now - start, 3),
        "loads": counts["loads"],
        "stores": counts["stores"],
        "connections": counts["connections"],
    }


def _positive_seconds(text):
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not 0 < seconds < math.inf:
        raise CommandError(f"SECONDS must be a positive number, not {text!r}")
    return seconds


# -- zeostatus ----------------------------------------------------------------


@provider(IMonitorPlugin)
def zeostatus(connection, database=ALL_DATABASES):
    """Show whether the ZEO clients are connected to their servers.

    Usage: zeostatus [DATABASE]

    DATABASE is the name of a registered database, or "-" (the default)
    for all of them.  Output (JSON), for each database: "not a ZEO client"
    if its storage is not a ZEO ClientStorage, otherwise

    - "connected": whether the client is connected to its server;
    - "server address": the address the client is configured to use;
    - "last transaction": the id, in hex, of the last transaction the
      client knows of, and "last transaction time" its time in UTC (null
      before the first transaction).
    """
    write_json(
        connection,
        {
            name: _zeo_status(db.storage)
            for name, db in _select_databases(database).items()
        },
    )


def _zeo_status(storage):
    if not isinstance(storage, ClientStorage):
        return "not a ZEO client"
    tid = storage.lastTransaction()
    return {
        "connected": storage.is_connected(),
        # ZEO offers no public accessor for the configured address.
        "server address": _describe_zeo_address(storage._addr),
        "last transaction": tid.hex(),
        "last transaction time": None if tid == z64 else _utc_iso(tid),
    }


def _describe_zeo_address(address):
    """Spell a ClientStorage address: a path, (host, port), or a list."""
    addresses = address if isinstance(address, list) else [address]
    return ", ".join(
        f"{one[0]}:{one[1]}" if isinstance(one, tuple) else str(one)
        for one in addresses
    )


def _utc_iso(tid):
    moment = datetime.fromtimestamp(TimeStamp(tid).timeTime(), timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# -- shared -------------------------------------------------------------------


def _select_databases(name):
    """Return the registered databases `name` selects, by name."""
    registered = database_registry.databases()
    if name == ALL_DATABASES:
        return registered
    if name not in registered:
        known = ", ".join(registered) or "none"
        raise CommandError(
            f"No database is registered as {name!r} (registered: {known})"
        )
    return {name: registered[name]}
