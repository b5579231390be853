"""What zc.async and plone.app.async left in a database, and removing it.

zc.async kept everything under the root key ``'zc.async'``: the queues
(``zc.async.queue.Queues``, ``Queue``), the workers' records and agents
(``DispatcherAgents``, ``zc.async.agent.Agent``), the jobs
(``zc.async.job.Job``, plone.app.async's ``_executeAsUser`` calls), their
callbacks, failures (``zc.twist``) and completed history.  In a
multi-database set-up the queues live in the database ``async`` (its root
has the key) and the main root refers to them under the same key.  On
Python 3 none of these classes can be imported: the objects load broken.

:func:`survey` walks those records without loading them as objects (see
:mod:`.records`), counts them by class, and lists the jobs that never
completed (pending ones, and those a worker held when it stopped) by
callable and site.  :func:`remove` deletes the root keys, one database at a
time; the records are then unreachable, and the next pack of each
database deletes them.
"""
import collections
import dataclasses
import logging

from ZODB.utils import z64

from plone.app.asyncjobs.engine import status
from plone.app.asyncjobs.migration import records


logger = logging.getLogger("plone.app.asyncjobs.migration")

#: zc.async's root key (``zc.async.interfaces.KEY``).
ZC_ASYNC_KEY = "zc.async"

#: The function plone.app.async's service queued; its arguments were the
#: context's path, the site's path, the user folder's path, the user id,
#: then the function and its own arguments.
EXECUTE_AS_USER = "plone.app.async.service._executeAsUser"

#: zc.async's stored status ids (``Job._status_id``).
_STORED_STATUS = {1: status.ACTIVE, 2: status.CALLBACKS, 3: status.COMPLETED}
_LEGACY_STATUS = {value: name for name, value in status.ZC_ASYNC_VALUES.items()}

#: Records between two progress lines in the log.
BATCH_SIZE = 10000

#: Modules of the classes of zc.async's data and of what it is built of.
#: The survey does not follow references to other records (content whose
#: method a job was to call, say): they are not zc.async's.
ZC_ASYNC_MODULES = ("zc.", "plone.app.async.", "zope.bforest.", "zope.minmax.",
                    "BTrees.", "persistent.", "twisted.")


@dataclasses.dataclass
class Survey:
    """What :func:`survey` found."""

    #: Databases whose root has the key ``'zc.async'``.
    databases: list = dataclasses.field(default_factory=list)
    #: Databases that are referred to but not configured in this process.
    missing_databases: set = dataclasses.field(default_factory=set)
    #: How many records hang under the key (in all databases).
    records: int = 0
    #: Records by class name.
    classes: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    #: Jobs by status (callbacks of jobs are not counted).
    jobs: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    #: Jobs that never completed, by ``(status, callable, site)``.
    unfinished: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    #: References from zc.async's data to records of other classes (kept).
    outside: int = 0
    #: References to records that are gone (a pack of one database of a
    #: multi-database set-up, say) or cannot be read: skipped.
    unreadable: int = 0

    @property
    def found(self):
        return bool(self.databases)

    def report(self):
        """The survey as lines of text."""
        if not self.found:
            return ["No zc.async data (root key 'zc.async') in this database."]
        lines = [
            f"zc.async data under the root key 'zc.async' of database(s) "
            f"{', '.join(repr(name) for name in self.databases)}: "
            f"{self.records} record(s).",
        ]
        if self.missing_databases:
            lines.append(
                "Not configured in this process, so not surveyed: database(s) "
                f"{', '.join(sorted(map(repr, self.missing_databases)))}."
            )
        if self.unreadable:
            lines.append(
                f"{self.unreadable} referred record(s) are gone or cannot be read "
                "(see the log); they were skipped."
            )
        if self.outside:
            lines.append(
                f"They refer {self.outside} time(s) to records of other classes "
                "(content, say); those stay."
            )
        lines.append("Records by class:")
        lines += [f"  {count:8d}  {name}" for name, count in sorted(self.classes.items())]
        lines.append("Jobs by status: " + (", ".join(
            f"{name} {self.jobs[name]}" for name in status.ALL if self.jobs[name]) or "none"))
        if self.unfinished:
            lines.append("Jobs that never completed (they will not run again):")
            for (job_status, callable_name, site), count in sorted(self.unfinished.items()):
                lines.append(f"  {count:8d}  {job_status:9s} {callable_name}  in {site}")
        else:
            lines.append("No job was left unfinished.")
        return lines


class _Walk:
    """Visits every record reachable from some references, once."""

    def __init__(self, connection, found):
        self.databases = connection.db().databases
        self.found = found
        self.seen = set()
        self.class_of = {}
        self.jobs = []

    def run(self, start):
        pending = collections.deque(start)
        while pending:
            database, oid = pending.popleft()
            if (database, oid) in self.seen:
                continue
            self.seen.add((database, oid))
            db = self.databases.get(database)
            if db is None:
                self.found.missing_databases.add(database)
                continue
            try:
                record = records.read(db.storage, oid)
            except Exception:
                # Gone (POSKeyError) or unreadable: it cannot hold a job to
                # report, and must not stop the survey (nor the removal).
                logger.warning("cannot read record %s of database %r; skipping it",
                               oid.hex(), database, exc_info=True)
                self.found.unreadable += 1
                continue
            if not (record.class_name or "").startswith(ZC_ASYNC_MODULES):
                self.found.outside += 1
                continue
            self._count(database, record)
            for reference in records.references(record.state):
                if reference.class_name and not reference.class_name.startswith(ZC_ASYNC_MODULES):
                    self.found.outside += 1
                    continue
                pending.append((reference.database or database, reference.oid))

    def _count(self, database, record):
        found = self.found
        found.records += 1
        found.classes[record.class_name] += 1
        self.class_of[database, record.oid] = record.class_name
        if isinstance(record.state, dict) and "_callable_root" in record.state:
            self.jobs.append((database, record._replace(state=_job_facts(record.state))))
        if found.records % BATCH_SIZE == 0:
            logger.info("surveyed %s zc.async records", found.records)


def survey(connection):
    """Survey the zc.async data reachable from ``connection`` (a connection
    to the main database; the other databases of its set-up are included).
    Changes nothing."""
    found = Survey()
    start = []
    for database, reference in _root_entries(connection):
        found.databases.append(database)
        start.append((reference.database or database, reference.oid))
    walk = _Walk(connection, found)
    walk.run(start)
    for database, record in walk.jobs:
        job_status = _status(record.state, database, walk.class_of)
        if job_status is None:  # a callback: part of its job
            continue
        found.jobs[job_status] += 1
        if job_status != status.COMPLETED:
            callable_name, site = _describe(record.state, database, walk)
            found.unfinished[job_status, callable_name, site] += 1
    return found


def remove(connection, commit=None):
    """Delete the key ``'zc.async'`` from the root of every database of
    ``connection``'s set-up that has it; return their names.

    ``commit`` (a function) is called after each database, so that a
    script commits them one by one; an upgrade step leaves the commit to
    its transaction.
    """
    removed = []
    for database, _ in _root_entries(connection):
        root = connection.get_connection(database).root()
        del root[ZC_ASYNC_KEY]
        removed.append(database)
        logger.info("removed the root key %r of database %r", ZC_ASYNC_KEY, database)
        if commit is not None:
            commit()
    return removed


def _root_entries(connection):
    """``(database name, reference)`` of each root that has the key,
    read without loading the root's other values."""
    for database, db in sorted(connection.db().databases.items()):
        root = records.read(db.storage, z64)
        mapping = root.state.get("data", root.state.get("_container", {}))
        reference = mapping.get(ZC_ASYNC_KEY)
        if isinstance(reference, records.Reference):
            yield database, reference


#: The parts of a job's state that the survey reports from; the rest (its
#: result, often large) is not kept until the end of the walk.
_JOB_FACTS = ("_status_id", "_status", "parent", "_callable_root", "_callable_name",
              "portal_path", "args")


def _job_facts(state):
    """What :func:`_status` and :func:`_describe` read of a job's ``state``."""
    facts = {key: state[key] for key in _JOB_FACTS if key in state}
    args = facts.get("args")
    if isinstance(args, (list, tuple)) and not isinstance(args, records.Reference):
        facts["args"] = tuple(args[:5])  # _executeAsUser's site and function
    return facts


def _status(state, database, class_of):
    """The job's status, or ``None`` for a callback of another job."""
    stored = state.get("_status_id")
    if stored is None and "_status" in state:
        return _LEGACY_STATUS.get(state["_status"], str(state["_status"]))
    if stored in _STORED_STATUS:
        return _STORED_STATUS[stored]
    parent = state.get("parent")
    if not isinstance(parent, records.Reference):
        return status.NEW
    parent_class = parent.class_name or class_of.get((parent.database or database, parent.oid), "")
    if parent_class.endswith(".Queue"):
        return status.PENDING
    if parent_class.endswith(".Agent"):
        return status.ASSIGNED
    return None


def _describe(state, database, walk):
    """``(callable, site)`` of a job; the site is ``'?'`` when unknown."""
    root = state.get("_callable_root")
    name = state.get("_callable_name")
    if isinstance(root, records.Reference):
        callable_name = f"{root.class_name or 'object'} :{name}"
    else:
        callable_name = records.dotted_name(root) or repr(root)
        if name:
            callable_name += f" :{name}"
    site = _path(state.get("portal_path"))
    if callable_name == EXECUTE_AS_USER:
        arguments = _arguments(state.get("args"), database, walk)
        if len(arguments) > 4:
            site = _path(arguments[1])
            callable_name = records.dotted_name(arguments[4]) or repr(arguments[4])
    return callable_name, site or "?"


def _arguments(value, database, walk):
    if isinstance(value, records.Reference):
        db = walk.databases.get(value.database or database)
        if db is None:
            return []
        value = records.read(db.storage, value.oid).state
    if isinstance(value, dict):
        value = value.get("data", [])
    return list(value) if isinstance(value, (list, tuple)) else []


def _path(value):
    if not isinstance(value, (list, tuple)) or not value:
        return None
    parts = [part.decode("utf-8", "replace") if isinstance(part, bytes) else str(part)
             for part in value]
    return "/".join(parts) or "/"
