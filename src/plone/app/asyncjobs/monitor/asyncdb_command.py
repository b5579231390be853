"""The ``asyncdb`` monitor command: the jobs and dispatchers in the database.

``asyncdb`` reads everything the database holds about jobs: every queue,
every dispatcher record (live, dead or deactivated), the jobs agents hold
and the history of completed jobs.  It reads in a connection of its own
whose transaction is always aborted -- a commit is refused outright -- so
it never writes.  It runs in the monitor server's thread pool, never on a
dispatcher's reactor thread, so however long it takes, dispatchers keep
polling.  The conventions shared with ``async`` are in `.tool_commands`.

Which database it reads, in this order:

1. ``database:NAME`` -- the database registered under NAME in
   `.databases` (the names ``dbinfo`` shows);
2. the database given to `AsyncDBCommand` (``AsyncDBCommand(db)``, for a
   standalone server);
3. the database registered as ``main``;
4. the database of the dispatcher running in this process;
5. the only registered database.
"""

import contextlib
import heapq
import itertools
import threading

import transaction
from ZODB.POSException import POSKeyError
from zope.interface import implementer

from plone.app.asyncjobs.engine import failure as failures
from plone.app.asyncjobs.engine.clock import EPOCH
from plone.app.asyncjobs.engine.clock import utcnow
from plone.app.asyncjobs.engine.ids import load
from plone.app.asyncjobs.engine.ids import short_repr
from plone.app.asyncjobs.engine.interfaces import IJob
from plone.app.asyncjobs.engine.naming import brief_repr
from plone.app.asyncjobs.engine.naming import cut
from plone.app.asyncjobs.engine.naming import dotted_name
from plone.app.asyncjobs.engine.naming import job_callable
from plone.app.asyncjobs.engine.naming import job_name
from plone.app.asyncjobs.engine.naming import shown_arguments
from plone.app.asyncjobs.engine.queue import KEY
from plone.app.asyncjobs.engine.status import ACTIVE
from plone.app.asyncjobs.engine.status import ASSIGNED
from plone.app.asyncjobs.engine.status import CALLBACKS
from plone.app.asyncjobs.engine.status import COMPLETED
from plone.app.asyncjobs.engine.status import FAILED
from plone.app.asyncjobs.engine.status import IN_PROGRESS
from plone.app.asyncjobs.engine.status import PENDING
from plone.app.asyncjobs.engine.status import SUCCEEDED
from plone.app.asyncjobs.engine.status import dispatcher_state

from . import databases as database_registry
from .async_command import local_dispatchers
from .async_command import select_dispatcher
from .async_command import this_worker_uuid
from .interfaces import CommandError
from .interfaces import IMonitorPlugin
from .tool_commands import INTERVAL_HELP
from .tool_commands import ToolCommand
from .tool_commands import glob_matches
from .tool_commands import parse_count
from .tool_commands import parse_interval
from .tool_commands import parse_oid
from .tool_commands import parse_uuid
from .tool_commands import tool


#: The states a job selection may name: the statuses of jobs in queues, and
#: completed ones split in two by outcome (a cancelled job is a failed one).
STATES = (PENDING, ASSIGNED, ACTIVE, CALLBACKS, COMPLETED, SUCCEEDED, FAILED)
HELD_STATES = IN_PROGRESS
FINAL_STATES = (COMPLETED, SUCCEEDED, FAILED)

#: Time filters: argument name -> the job's time it compares.
TIME_FILTERS = {
    "requested_start": lambda job: job.begin_after,
    "start": lambda job: job.active_start,
    "end": lambda job: job.active_end,
    "callbacks_completed": lambda job: completed_at(job),
}

#: States each time filter leaves possible (a job without the time fails it).
TIME_FILTER_STATES = {
    "requested_start": STATES,
    "start": HELD_STATES + FINAL_STATES,
    "end": (CALLBACKS,) + FINAL_STATES,
    "callbacks_completed": FINAL_STATES,
}

DISPLAYS = ("default", "repr", "details")
TRACEBACK_DETAILS = ("brief", "default", "verbose")

#: The named arguments of the tools that select jobs.
FILTERS = (
    "callable:GLOB", "queue:GLOB", "agent:GLOB", "uuid:UUID",
    "requested_start:WHEN", "start:WHEN", "end:WHEN", "callbacks_completed:WHEN",
)
DATABASE = "database:NAME"


# -- job facts ------------------------------------------------------------------


def completed_at(job):
    """When `job` completed, or None.

    The engine records when a job's result was stored (``active_end``) and
    orders its history by that time; it does not record when the callbacks
    of a job finished.  So a completed job's completion time, which the
    ``callbacks_completed:`` filter compares, is its ``active_end``.
    """
    if job.status != COMPLETED:
        return None
    return job.active_end


def failed(job):
    return failures.is_failure(job.result)


def durations(job, now):
    """``(wait, active)``: from requested start to start, and start to end.

    A job not started yet has waited until `now` if it is due; a job
    completed without starting (its deadline passed) has no wait.  Either
    is None when it does not apply.
    """
    status = job.status
    begin_after = job.begin_after
    start = job.active_start
    wait_end = start if start is not None else (now if status in (PENDING, ASSIGNED) else None)
    wait = None
    if begin_after is not None and wait_end is not None and begin_after <= wait_end:
        wait = wait_end - begin_after
    active = None
    if start is not None:
        active = (job.active_end or now) - start
    return wait, active


def summary(job, now):
    """What ``asyncdb job`` shows of `job`."""
    agent = job.agent
    queue = job.queue
    wait, active = durations(job, now)
    result = job.result
    if failures.is_failure(result):
        result_text = failures.traceback_text(result, detail="brief")
    elif IJob.providedBy(result):
        result_text = f"waiting for job {short_repr(result)}"
    elif result is None and job.status != COMPLETED:
        result_text = None
    else:
        result_text = brief_repr(result)
    parent = job.parent
    args, kwargs = shown_arguments(job, brief_repr)
    return {
        "id": job,
        "repr": cut(repr(job)),
        "callable": job_name(job),
        "args": args,
        "kwargs": kwargs,
        "status": job.status,
        "failed": failures.is_failure(result),
        "result": result_text,
        "begin after": job.begin_after,
        "begin by": job.begin_by,
        "active start": job.active_start,
        "active end": job.active_end,
        "completed": completed_at(job),
        "wait": wait,
        "active": active,
        "attempts": job.attempts,
        "quota names": list(job.quota_names),
        "queue": None if queue is None else queue.name,
        "agent": None if agent is None else agent.name,
        "dispatcher": None if agent is None else str(agent.parent.UUID),
        "assigner": None if job.assigner_uuid is None else str(job.assigner_uuid),
        "parent job": parent if IJob.providedBy(parent) else None,
        "callbacks": list(job.callbacks),
    }


def display(job, mode, now):
    if mode == "repr":
        return cut(repr(job))
    if mode == "details":
        return summary(job, now)
    return job


# -- selecting jobs -------------------------------------------------------------------


class Selection:
    """Which jobs a tool's states and filters select (see ``asyncdb help jobs``)."""

    def __init__(self, arguments, states):
        self.states = set(states)
        self.label = arguments.label
        self.callable = arguments.get("callable")
        self.queue = arguments.get("queue")
        self.agent = arguments.get("agent")
        uuid_text = arguments.get("uuid")
        if uuid_text is None:
            self.uuid = None
        elif uuid_text == "THIS":
            self.uuid = this_worker_uuid()
        else:
            self.uuid = str(parse_uuid(uuid_text, f"{self.label}: uuid:"))
        self.windows = {}
        for name in TIME_FILTERS:
            text = arguments.get(name)
            if text is None:
                continue
            self.windows[name] = self._window(name, text)
            self.states &= set(TIME_FILTER_STATES[name])

    def _window(self, name, text):
        """``(since, before)`` times from ``sinceINTERVAL,beforeINTERVAL``."""
        now = utcnow()
        since = before = None
        for part in text.split(","):
            lowered = part.lower()
            if lowered.startswith("since") and since is None:
                since = now - parse_interval(part[5:], f"{self.label}: {name}:")
            elif lowered.startswith("before") and before is None:
                before = now - parse_interval(part[6:], f"{self.label}: {name}:")
            else:
                raise CommandError(
                    f"{self.label}: {name}: {text!r} is not sinceINTERVAL, "
                    f"beforeINTERVAL or both, comma-separated ({INTERVAL_HELP})"
                )
        return since, before

    def wants_state(self, job):
        status = job.status
        if status == COMPLETED:
            if COMPLETED in self.states:
                return True
            return (FAILED if failed(job) else SUCCEEDED) in self.states
        return status in self.states

    def wants_record(self, record):
        return self.uuid is None or str(record.UUID) == self.uuid

    def wants_agent(self, name):
        return self.agent is None or glob_matches(self.agent, name)

    def wants_job(self, job):
        if self.callable is not None and not self._callable_matches(job_callable(job)):
            return False
        for name, (since, before) in self.windows.items():
            moment = TIME_FILTERS[name](job)
            if moment is None:
                return False
            if since is not None and moment < since:
                return False
            if before is not None and moment >= before:
                return False
        return True

    def _callable_matches(self, function):
        """A pattern without "." matches the name, else module.qualname."""
        if "." in self.callable:
            name = dotted_name(getattr(function, "__func__", function))
        else:
            name = getattr(function, "__name__", type(function).__name__)
        return glob_matches(self.callable, name)

    # -- finding --------------------------------------------------------------

    def jobs(self, queues):
        """The selected jobs: pending ones (in claim order), the ones agents
        hold (by start), then completed ones (newest first)."""
        selected = [
            (name, queue) for name, queue in queues.items()
            if self.queue is None or glob_matches(self.queue, name)
        ]
        streams = []
        if PENDING in self.states:
            streams.append(self._pending(selected))
        if self.states & set(HELD_STATES):
            streams.append(self._held(selected))
        if self.states & set(FINAL_STATES):
            streams.append(self._completed(selected))
        return filter(self.wants_job, itertools.chain.from_iterable(streams))

    def _pending(self, selected):
        per_queue = [
            self._pending_in(queue, self._agents_for_pending(queue))
            for name, queue in selected
        ]
        return heapq.merge(*per_queue, key=lambda job: job.begin_after or EPOCH)

    @staticmethod
    def _pending_in(queue, agents):
        for job in queue:
            if agents is None or any(agent.accepts(job) for agent in agents):
                yield job

    def _agents_for_pending(self, queue):
        """With agent: or uuid:, the agents whose filters decide; else None."""
        if self.agent is None and self.uuid is None:
            return None
        agents = []
        for record in queue.dispatchers.values():
            if not (record.activated and self.wants_record(record)):
                continue
            for name, agent in record.items():
                if not self.wants_agent(name):
                    continue
                if agent.chooser is not None:
                    raise CommandError(
                        f"{self.label}: agent {name!r} of dispatcher "
                        f"{record.UUID} chooses its jobs with a chooser, so "
                        f"which pending jobs it would take is unknown"
                    )
                agents.append(agent)
        return agents

    def _agents(self, selected):
        return [
            agent
            for name, queue in selected
            for record in queue.dispatchers.values() if self.wants_record(record)
            for agent_name, agent in record.items() if self.wants_agent(agent_name)
        ]

    def _held(self, selected):
        now = utcnow()
        held = [
            job for agent in self._agents(selected) for job in agent
            if job.status != COMPLETED and self.wants_state(job)
        ]
        return sorted(held, key=lambda job: job.active_start or now)

    def _completed(self, selected):
        histories = [_completed_by(agent) for agent in self._agents(selected)]
        merged = heapq.merge(*histories, key=_completion_order, reverse=True)
        return filter(self.wants_state, merged)


def _completed_by(agent):
    """An agent's completed jobs, newest first.

    An agent keeps holding the jobs that completed since its last claim or
    poll, which then move them to its history; both are merged here.
    """
    unswept = sorted(
        (job for job in agent if job.status == COMPLETED),
        key=_completion_order, reverse=True,
    )
    return heapq.merge(unswept, agent.completed, key=_completion_order, reverse=True)


def _completion_order(job):
    return completed_at(job) or EPOCH


# -- reading the database ------------------------------------------------------------


def _refuse_commit():
    raise RuntimeError("asyncdb reads only; it never commits")


def _refuse_reactor_threads():
    current = threading.current_thread()
    for dispatcher in local_dispatchers().values():
        reactor_thread = getattr(dispatcher, "reactor_thread", None)
        if getattr(reactor_thread, "thread", None) is current:
            raise RuntimeError(
                "asyncdb must not run in a dispatcher's reactor thread: it "
                "would stop the dispatcher's polls while it reads"
            )


@contextlib.contextmanager
def reading(db):
    """Yield a connection to `db` for reading; abort and close it after.

    The transaction is aborted whatever happens, and a commit attempt
    raises, so nothing read here is ever written.
    """
    _refuse_reactor_threads()
    manager = transaction.TransactionManager()
    connection = db.open(transaction_manager=manager)
    try:
        manager.begin().addBeforeCommitHook(_refuse_commit)
        yield connection
    finally:
        manager.abort()
        connection.close()


# -- the command -----------------------------------------------------------------------


@implementer(IMonitorPlugin)
class AsyncDBCommand(ToolCommand):
    """Show the jobs and dispatchers stored in the database (read-only).

    Usage: asyncdb TOOL [ARGUMENT...] [NAME:VALUE...]

    Tools: count, jobs, job, nextpending, lastcompleted, traceback,
    jobstats, UUIDs, status, help.  "asyncdb help" lists them, "asyncdb
    help TOOL" describes one.

    Jobs are selected by STATEs (pending, assigned, active, callbacks,
    completed, succeeded, failed; at most one of the last three) and
    filters: callable:GLOB (the function's name, or module.name if GLOB
    has a dot), queue:GLOB ("queue:" alone is the default queue),
    agent:GLOB, uuid:UUID or uuid:THIS (a dispatcher; for pending jobs,
    agent: and uuid: keep those such agents would accept), and
    requested_start:, start:, end:, callbacks_completed: each
    sinceINTERVAL, beforeINTERVAL or both comma-separated (e.g.
    start:since1h,before10m).

    database:NAME reads the database registered under NAME (see dbinfo);
    the default is the database given at set-up, else "main", else the
    database of this process's dispatcher, else the only one registered.
    The database is only read, never written.  Output is JSON, as for
    "async"; jobs are [oid, database name].
    """

    command_name = "asyncdb"

    def __init__(self, db=None):
        #: The database to read by default (a `ZODB.DB`), or None.
        self.db = db

    # -- where to read ----------------------------------------------------------

    def database(self, arguments):
        """The `ZODB.DB` to read (see the module docstring)."""
        name = arguments.get("database")
        registered = database_registry.databases()
        if name is not None:
            if name not in registered:
                known = ", ".join(registered) or "none"
                raise arguments.error(
                    f"no database is registered as {name!r} (registered: {known})"
                )
            return registered[name]
        if self.db is not None:
            return self.db
        if "main" in registered:
            return registered["main"]
        running = local_dispatchers()
        if running:
            return select_dispatcher().db
        if len(registered) == 1:
            return next(iter(registered.values()))
        raise arguments.error(
            "which database? none is registered as 'main' and no dispatcher "
            "runs here; give database:NAME"
            + (f" (registered: {', '.join(registered)})" if registered else "")
        )

    @contextlib.contextmanager
    def queues(self, arguments):
        """Yield the queues container of the database, read-only."""
        with reading(self.database(arguments)) as connection:
            queues = connection.root().get(KEY)
            if queues is None:
                raise arguments.error(
                    f"the database has no job queues (no root[{KEY!r}]); no "
                    f"worker has started on it yet"
                )
            yield queues

    @contextlib.contextmanager
    def job_of(self, arguments):
        """Yield the job OID [DATABASE] names, read-only."""
        oid = parse_oid(arguments.get("OID"), f"{arguments.label}: OID")
        with reading(self.database(arguments)) as connection:
            name = arguments.get("DATABASE") or connection.db().database_name
            names = connection.db().databases
            if name not in names:
                raise arguments.error(
                    f"no database {name!r} in this database set (names: "
                    f"{', '.join(sorted(names))})"
                )
            try:
                job = load(connection, oid, name)
            except POSKeyError:
                raise arguments.error(f"no object {oid} in database {name!r}") from None
            if not IJob.providedBy(job):
                raise arguments.error(
                    f"object {oid} of database {name!r} is not a job but "
                    f"{short_repr(job)}"
                )
            yield job

    @staticmethod
    def states(arguments, required=True):
        """The STATE arguments, checked; all states if none and not `required`."""
        states = arguments.rest
        for state in states:
            if state not in STATES:
                raise arguments.error(
                    f"unknown state {state!r} (states: {', '.join(STATES)})"
                )
        if not states:
            if required:
                raise arguments.error(
                    f"give one or more states: {', '.join(STATES)}"
                )
            states = (PENDING,) + HELD_STATES + (COMPLETED,)
        if len(set(states) & set(FINAL_STATES)) > 1:
            raise arguments.error("give only one of completed, succeeded and failed")
        return states

    @staticmethod
    def display_mode(arguments):
        mode = arguments.get("display", "default")
        if mode not in DISPLAYS:
            raise arguments.error(
                f"display: {mode!r} is not one of {', '.join(DISPLAYS)}"
            )
        return mode

    # -- tools ---------------------------------------------------------------------

    @tool(repeated="STATE", named=FILTERS + (DATABASE,))
    def count(self, arguments):
        """Count the jobs in the STATEs given that pass the filters.

        See "help asyncdb" for states and filters.
        """
        selection = Selection(arguments, self.states(arguments))
        with self.queues(arguments) as queues:
            return sum(1 for _ in selection.jobs(queues))

    @tool(repeated="STATE", named=FILTERS + ("display:MODE", "count:N", DATABASE))
    def jobs(self, arguments):
        """List the jobs in the STATEs given that pass the filters.

        Pending jobs come first, in the order they would be claimed; then
        the jobs agents hold, by start; then completed jobs, newest first.
        display: default shows ids [oid, database name], repr their reprs,
        details what "asyncdb job" shows.  count: shows the first N only.
        See "help asyncdb" for states and filters.
        """
        selection = Selection(arguments, self.states(arguments))
        mode = self.display_mode(arguments)
        count = arguments.get("count")
        if count is not None:
            count = parse_count(count, f"{arguments.label}: count:")
        now = utcnow()
        with self.queues(arguments) as queues:
            jobs = itertools.islice(selection.jobs(queues), count)
            return [display(job, mode, now) for job in jobs]

    @tool(positional=("OID",), optional=("DATABASE",), named=(DATABASE,))
    def job(self, arguments):
        """Describe a job: OID [DATABASE] as in its id [oid, database name].

        Output: "id", "repr", "callable", "args" and "kwargs" (reprs),
        "status", "failed", "result" (repr, or a brief traceback), "begin
        after" (requested start), "begin by", "active start", "active end"
        (result stored), "completed" (when, for completed jobs), "wait"
        (begin after to start, or to now if due and not started), "active"
        (start to end, or to now), "attempts", "quota names", "queue",
        "agent", "dispatcher" (UUID), "assigner" (UUID of the process that
        queued it), "parent job" (for callbacks) and "callbacks" (job ids).
        DATABASE defaults to the main database of the set read.
        """
        now = utcnow()
        with self.job_of(arguments) as job:
            return summary(job, now)

    @tool(named=FILTERS[:5] + (DATABASE,))
    def nextpending(self, arguments):
        """Describe the next pending job that passes the filters, or null.

        "Next" in claim order: jobs handed back first, then by requested
        start (requested_start: applies; start:, end: and
        callbacks_completed: do not).  Described as by "asyncdb job".
        """
        selection = Selection(arguments, (PENDING,))
        now = utcnow()
        with self.queues(arguments) as queues:
            job = next(selection.jobs(queues), None)
            return None if job is None else summary(job, now)

    @tool(named=FILTERS + (DATABASE,))
    def lastcompleted(self, arguments):
        """Describe the most recently completed job passing the filters, or null.

        Described as by "asyncdb job".
        """
        selection = Selection(arguments, (COMPLETED,))
        now = utcnow()
        with self.queues(arguments) as queues:
            job = next(selection.jobs(queues), None)
            return None if job is None else summary(job, now)

    @tool(positional=("OID",), optional=("DATABASE",), named=("detail:LEVEL", DATABASE))
    def traceback(self, arguments):
        """Show the traceback of a failed job (a JSON string), or null.

        OID [DATABASE] as for "asyncdb job".  detail: brief (the error,
        then file:line:function per frame), default, or verbose (with the
        local variables, when they were captured).  Pipe through "jq -r ."
        to read it.
        """
        detail = arguments.get("detail", "default")
        if detail not in TRACEBACK_DETAILS:
            raise arguments.error(
                f"detail: {detail!r} is not one of {', '.join(TRACEBACK_DETAILS)}"
            )
        with self.job_of(arguments) as job:
            if not failures.is_failure(job.result):
                return None
            return failures.traceback_text(job.result, detail=detail)

    @tool(repeated="STATE", named=FILTERS + ("display:MODE", DATABASE))
    def jobstats(self, arguments):
        """Count the selected jobs by state, and show the extreme durations.

        Output: "pending", "assigned", "active", "callbacks", "succeeded"
        and "failed" counts; "longest wait", "shortest wait", "longest
        active", "shortest active" as [duration, job] or null.  Wait is
        from requested start to start (to now for due jobs not started);
        active from start to end (to now while running).  Without STATEs,
        all jobs.  display: as for "asyncdb jobs".
        """
        selection = Selection(arguments, self.states(arguments, required=False))
        mode = self.display_mode(arguments)
        now = utcnow()
        counts = dict.fromkeys((PENDING,) + HELD_STATES + (SUCCEEDED, FAILED), 0)
        longest = {"wait": None, "active": None}
        shortest = {"wait": None, "active": None}
        with self.queues(arguments) as queues:
            for job in selection.jobs(queues):
                status = job.status
                if status == COMPLETED:
                    status = FAILED if failed(job) else SUCCEEDED
                counts[status] = counts.get(status, 0) + 1
                for kind, duration in zip(("wait", "active"), durations(job, now)):
                    if duration is None:
                        continue
                    if longest[kind] is None or duration > longest[kind][0]:
                        longest[kind] = (duration, job)
                    if shortest[kind] is None or duration < shortest[kind][0]:
                        shortest[kind] = (duration, job)
            report = dict(counts)
            for extremes, word in ((longest, "longest"), (shortest, "shortest")):
                for kind, found in extremes.items():
                    report[f"{word} {kind}"] = (
                        None if found is None else [found[0], display(found[1], mode, now)]
                    )
            return report

    @tool(named=("queue:GLOB", DATABASE))
    def UUIDs(self, arguments):
        """List the UUIDs of the activated dispatchers (dead ones included)."""
        with self.queues(arguments) as queues:
            return sorted({
                str(record.UUID)
                for name, queue in queues.items()
                if arguments.get("queue") is None or glob_matches(arguments.get("queue"), name)
                for record in queue.dispatchers.values() if record.activated
            })

    @tool(named=("queue:GLOB", "agent:GLOB", "uuid:UUID", DATABASE))
    def status(self, arguments):
        """Show every queue and every dispatcher record in it.

        For each queue: "len" (pending jobs) and "dispatchers", by UUID:
        "state" -- as the job console and the REST API give it: alive,
        stuck (its pings are overdue, it is not dead yet), dead
        (activated, but silent for longer than its ping death interval; a
        live dispatcher will deactivate it and recover its jobs) or
        deactivated; "paused" (its agents start no job until resumed from
        the job console); "activated" (null when deactivated), "last
        ping", "since ping", "dead" (silent for the ping death interval,
        whatever the state), "ping interval", "ping death interval", "process" ([host, pid] that activated it) and
        "agents", by name: "size" (threads), "len" (jobs held), "filter"
        and "chooser" (null if none).  queue:, agent: and uuid: (or
        uuid:THIS) restrict the output.
        """
        selection = Selection(arguments, ())
        now = utcnow()
        report = {}
        with self.queues(arguments) as queues:
            for name, queue in queues.items():
                if selection.queue is not None and not glob_matches(selection.queue, name):
                    continue
                report[name] = {
                    "len": len(queue),
                    "dispatchers": {
                        str(record.UUID): self._record_status(record, selection, now)
                        for record in queue.dispatchers.values()
                        if selection.wants_record(record)
                    },
                }
        return report

    @staticmethod
    def _record_status(record, selection, now):
        dead = record.dead
        return {
            "state": dispatcher_state(record, now),
            "paused": record.paused,
            "activated": record.activated,
            "last ping": record.last_ping,
            "since ping": None if record.last_ping is None else now - record.last_ping,
            "dead": dead,
            "ping interval": record.ping_interval,
            "ping death interval": record.ping_death_interval,
            "process": None if record.process is None else list(record.process),
            "agents": {
                agent_name: {
                    "size": agent.size,
                    "len": len(agent),
                    "filter": None if agent.filter is None else dotted_name(agent.filter),
                    "chooser": None if agent.chooser is None else dotted_name(agent.chooser),
                }
                for agent_name, agent in record.items()
                if selection.wants_agent(agent_name)
            },
        }


#: The ``asyncdb`` plugin registered in configure.zcml; it finds its database
#: at each call (see the module docstring).
asyncdb = AsyncDBCommand()
