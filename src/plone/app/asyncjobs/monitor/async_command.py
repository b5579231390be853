"""The ``async`` monitor command: this process's dispatchers, from memory.

``async`` reports what the dispatchers running in *this* process keep in
memory: their status, their recent polls, the jobs their worker threads
ran recently.  It never touches a database, so it answers even when the
database is slow or away.  ``asyncdb`` (`.asyncdb_command`) reports from
the database.  The conventions shared by both are in `.tool_commands`.
"""

import itertools

from zope.interface import implementer

from plone.app.asyncjobs.engine import dispatcher as engine_dispatcher
from plone.app.asyncjobs.engine import instanceuuid
from plone.app.asyncjobs.engine.clock import utcnow

from .interfaces import CommandError
from .interfaces import IMonitorPlugin
from .tool_commands import ToolCommand
from .tool_commands import encode_datetime
from .tool_commands import parse_count
from .tool_commands import parse_oid
from .tool_commands import parse_poll_point
from .tool_commands import parse_uuid
from .tool_commands import tool


#: How many polls ``async polls`` shows when given neither count: nor since:.
DEFAULT_POLL_COUNT = 3

#: The status of a running dispatcher whose agents are all paused.
PAUSED = "PAUSED"


# -- the dispatchers of this process --------------------------------------------


def local_dispatchers():
    """The dispatchers active in this process, by UUID (as a string)."""
    running = engine_dispatcher.active_dispatchers().items()
    return {str(uuid): dispatcher for uuid, dispatcher in running}


def select_dispatcher(uuid_text=None, label="uuid:"):
    """The dispatcher `uuid_text` names, or this process's by default.

    The default is the only dispatcher running here or, if several run,
    the one with this process's configured UUID (``ZC_ASYNC_UUID``).
    Raises `CommandError` when there is no such dispatcher.
    """
    running = local_dispatchers()
    known = ", ".join(sorted(running)) or "none"
    if uuid_text is not None:
        wanted = str(parse_uuid(uuid_text, label))
        if wanted not in running:
            raise CommandError(
                f"No dispatcher {wanted} runs in this process (running: {known})"
            )
        return running[wanted]
    if not running:
        raise CommandError("No dispatcher runs in this process")
    if len(running) == 1:
        return next(iter(running.values()))
    own = instanceuuid.configured_uuid()
    if own is not None and str(own) in running:
        return running[str(own)]
    raise CommandError(
        f"Several dispatchers run in this process ({known}); choose one "
        f"with uuid:UUID"
    )


def this_worker_uuid():
    """This process's worker UUID, as a string.

    The configured one (from the ``ZC_ASYNC_UUID`` file) if there is one,
    else that of the only dispatcher running here; `CommandError` if
    neither exists.
    """
    own = instanceuuid.configured_uuid()
    if own is not None:
        return str(own)
    running = local_dispatchers()
    if len(running) == 1:
        return next(iter(running))
    raise CommandError(
        "This process has no worker UUID: ZC_ASYNC_UUID is not set and "
        f"{'several' if running else 'no'} dispatchers run here"
    )


def _dispatcher(arguments):
    """The dispatcher a tool's uuid: argument selects (see `select_dispatcher`)."""
    return select_dispatcher(arguments.get("uuid"), f"{arguments.label}: uuid:")


# -- polls --------------------------------------------------------------------------


def _describe_point(point):
    return f"poll {point}" if isinstance(point, int) else f"{point} ago"


def _poll_reached(poll, point, inclusive):
    """Whether `poll` is at (or, not `inclusive`, before) `point`."""
    if isinstance(point, int):
        return poll.key == point if inclusive else poll.key < point
    return poll.utc_timestamp <= point if inclusive else poll.utc_timestamp < point


def _moment(point, now):
    """A poll key as is; an interval ago as the time it names."""
    return point if isinstance(point, int) else now - point


def _poll_point_arguments(arguments):
    """``(point, inclusive)`` from at: or before:, or ``(None, True)``."""
    at = arguments.get("at")
    before = arguments.get("before")
    if at is not None and before is not None:
        raise arguments.error("give at: or before:, not both")
    if at is not None:
        return parse_poll_point(at, f"{arguments.label}: at:"), True
    if before is not None:
        return parse_poll_point(before, f"{arguments.label}: before:"), False
    return None, True


def _first_poll(dispatcher, point, inclusive, now):
    """The newest poll at or before `point`; `CommandError` if none is kept."""
    polls = list(dispatcher.iter_polls())
    if not polls:
        raise CommandError(f"Dispatcher {dispatcher.uuid} has not polled yet")
    if point is None:
        return polls[0]
    moment = _moment(point, now)
    for poll in polls:
        if _poll_reached(poll, moment, inclusive):
            return poll
    where = "at" if inclusive else "before"
    raise CommandError(
        f"No poll {where} {_describe_point(point)} is kept in memory (kept: "
        f"polls {polls[-1].key} to {polls[0].key}, since "
        f"{encode_datetime(polls[-1].utc_timestamp)})"
    )


def _paused(dispatcher):
    """Whether the latest poll found the dispatcher's agents, every one, paused."""
    latest = next(dispatcher.iter_polls(), None)
    agents = [agent for queue in (latest or {}).values() if queue
              for agent in queue.values()]
    return bool(agents) and all(agent.get("paused") for agent in agents)


def _poll_report(poll):
    return {"key": poll.key, "time": poll.utc_timestamp, "results": dict(poll)}


def _since_filter(arguments, now):
    """A predicate on polls from since:, or None."""
    since = arguments.get("since")
    if since is None:
        return None
    point = parse_poll_point(since, f"{arguments.label}: since:")
    if isinstance(point, int):
        return lambda poll: poll.key >= point
    moment = now - point
    return lambda poll: poll.utc_timestamp >= moment


# -- the command ----------------------------------------------------------------------


@implementer(IMonitorPlugin)
class AsyncCommand(ToolCommand):
    """Show the job dispatchers of this process, from memory (no database).

    Usage: async TOOL [ARGUMENT...] [NAME:VALUE...]

    Tools: status, jobs, job, jobstats, poll, polls, utcnow, UUID, help.
    "async help" lists them, "async help TOOL" describes one.

    Positional arguments come before NAME:VALUE ones.  uuid:UUID chooses
    a dispatcher running in this process; the default is the only one, or
    the one with this process's UUID.  A POLL is a poll key (an integer,
    as in "async poll") or an interval ago such as 1h30m (units d, h, m, s).

    Output is JSON: durations as {"days", "hours", "minutes", "seconds"}
    with the non-zero parts, times in ISO 8601 UTC ending in "Z", jobs as
    [oid, database name].  "asyncdb" reports from the database instead.
    """

    command_name = "async"

    @tool(named=("uuid:UUID",))
    def status(self, arguments):
        """Show whether the dispatcher polls, and since when.

        Output: "status" -- STOPPED, STARTING (no poll yet), RUNNING,
        PAUSED (running, but its latest poll found every agent paused, so
        it starts no job), or STUCK (no poll for two poll intervals; is
        the reactor blocked?);
        "poll interval", "time since last poll", "uptime" and "uuid";
        "push", what the dispatcher listens to for queued jobs
        ("invalidations", "postgresql notifications", or null: polling
        only); "pickups", the jobs started in the last hour: "jobs", "by"
        (how many each way they were picked up: push, timer, poll, next)
        and "latency" (p50, p90, p99 and max of their start minus the
        later of their due time and their queuing commit; null without
        jobs).
        """
        dispatcher = _dispatcher(arguments)
        info = dispatcher.status_info()
        if info["status"] == engine_dispatcher.RUNNING and _paused(dispatcher):
            info["status"] = PAUSED
        return info

    @tool(named=("queue:NAME", "agent:NAME", "uuid:UUID"))
    def jobs(self, arguments):
        """List the jobs the dispatcher's worker threads run right now.

        Jobs as [oid, database name].  queue: and agent: keep the jobs of
        that queue ("queue:" alone is the default queue) or agent.
        """
        dispatcher = _dispatcher(arguments)
        return dispatcher.active_job_ids(arguments.get("queue"), arguments.get("agent"))

    @tool(positional=("OID",), optional=("DATABASE",), named=("uuid:UUID",))
    def job(self, arguments):
        """Show what the dispatcher remembers of a job it ran recently.

        OID and DATABASE as in a job id [oid, database name]; DATABASE is
        needed only if the oid is ambiguous.  Output: "id", "call" (the
        job's repr), "queue", "agent", "thread", "quota names", "timeout"
        (its time limit in seconds, or null), "started",
        "completed" (null while it runs), "failed", "cancelled" (it failed
        with a CancelledError: cancelled before it ran, or asked to stop
        while it ran and it did), "timed out" (it failed with a
        JobTimeoutError: it ran past its time limit), "reassigned" (another worker took it
        over), "result" (its repr, a brief traceback, or for a cancelled
        job the reason),
        "pickup" (how a worker thread came to claim it: push, timer, poll or
        next; see "async status"), "pickup latency" and "attempt" (the
        job's attempt number when the thread started it).
        Only the latest jobs are remembered (200 by default); use "asyncdb
        job" for older ones.
        """
        dispatcher = _dispatcher(arguments)
        oid = parse_oid(arguments.get("OID"), f"{arguments.label}: OID")
        try:
            return dispatcher.job_info(oid, arguments.get("DATABASE"))
        except (LookupError, ValueError) as error:
            raise CommandError(f"{arguments.label}: {error}") from None

    @tool(named=("at:POLL", "before:POLL", "since:POLL", "queue:NAME",
                 "agent:NAME", "uuid:UUID"))
    def jobstats(self, arguments):
        """Count the recent jobs of the dispatcher, and their extremes.

        Output: "started", "successful", "failed", "unknown" (not finished
        yet, or after at:/before:); "shortest successful", "longest
        successful", "shortest failed", "longest failed" as [duration,
        job] or null; "statistics start" and "statistics end", the first
        and last start counted.  since: counts the jobs started from that
        poll or time on; at: (or before:) the ones started up to (before)
        it, with their outcome as of then.  queue: and agent: as for
        "async jobs".  Only the latest jobs are remembered (200 by default).
        """
        dispatcher = _dispatcher(arguments)
        now = utcnow()
        point, inclusive = _poll_point_arguments(arguments)
        since = arguments.get("since")
        if since is not None:
            since_point = parse_poll_point(since, f"{arguments.label}: since:")
            since = self._moment_of(dispatcher, since_point, now)
        queue, agent = arguments.get("queue"), arguments.get("agent")
        until = None if point is None else self._moment_of(dispatcher, point, now)
        return dispatcher.statistics_info(since=since, until=until, before=not inclusive,
                                          queue=queue, agent=agent)

    @staticmethod
    def _moment_of(dispatcher, point, now):
        """The time of a poll key (which must be kept), or of an interval ago."""
        if isinstance(point, int):
            return _first_poll(dispatcher, point, True, now).utc_timestamp
        return now - point

    @tool(named=("at:POLL", "before:POLL", "uuid:UUID"))
    def poll(self, arguments):
        """Show one poll of the dispatcher (default: the latest).

        at: shows the poll with that key, or the last one at that time;
        before: the one before.  Output: "key", "time" and "results": for
        each queue, null if the dispatcher could not work in it, else for
        each agent its "size", "len" (jobs it holds), "active jobs" and
        "paused".
        """
        dispatcher = _dispatcher(arguments)
        point, inclusive = _poll_point_arguments(arguments)
        return _poll_report(_first_poll(dispatcher, point, inclusive, utcnow()))

    @tool(named=("at:POLL", "before:POLL", "since:POLL", "count:N", "uuid:UUID"))
    def polls(self, arguments):
        """List recent polls of the dispatcher, newest first.

        Each as "async poll" shows it.  They start at the latest poll, or
        at at: / before: as for "async poll", and go back to since: (a poll
        key or time) or for count: polls; without either, 3 polls.
        """
        dispatcher = _dispatcher(arguments)
        now = utcnow()
        point, inclusive = _poll_point_arguments(arguments)
        count = arguments.get("count")
        if count is not None:
            count = parse_count(count, f"{arguments.label}: count:")
        keep = _since_filter(arguments, now)
        if count is None and keep is None:
            count = DEFAULT_POLL_COUNT
        polls = dispatcher.iter_polls()
        if point is not None:
            moment = _moment(point, now)
            polls = itertools.dropwhile(
                lambda poll: not _poll_reached(poll, moment, inclusive), polls
            )
        if keep is not None:
            polls = itertools.takewhile(keep, polls)
        return [_poll_report(poll) for poll in itertools.islice(polls, count)]

    @tool()
    def utcnow(self, arguments):
        """Show the current time in UTC, as the engine sees it."""
        return utcnow()

    @tool(name="UUID")
    def uuid(self, arguments):
        """Show this process's worker UUID.

        The one in the file ZC_ASYNC_UUID names, if that is set; otherwise
        that of the dispatcher running here.
        """
        return this_worker_uuid()


#: The ``async`` plugin (``async`` itself is a Python keyword).
async_ = AsyncCommand()
