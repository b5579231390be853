"""What the job control panel and the REST API show of jobs, and do to them.

Both present the same facts, so they are computed here once, as plain
JSON-ready data (times as ISO 8601 strings in UTC, job ids as strings of
integer oids).  Listings come from :mod:`.engine.listing` and never read
more jobs than a page needs (a filtered page reads at most
:data:`SCAN_LIMIT`).  Actions change the caller's transaction only and log
who did what on the logger ``plone.app.asyncjobs.admin``.

Every function that finds jobs takes an :class:`~.access.Scope`: a job
outside it is not there (see :mod:`.access`).

Jobs the engine or the service made for themselves (:mod:`.engine.internal`:
the callback that notifies a job's events, the job that resumes the
callbacks of a cancelled one, ...) are nobody's work: they are not listed,
counted or shown among a job's callbacks.

Bad input raises :class:`QueryError` (its ``field`` names the parameter),
an unknown job ``LookupError``, an action the job's status does not allow
:class:`~.engine.exceptions.BadStatusError`, a retry that would run with
rights the caller does not have :class:`~.access.RunAsRefused`.
"""
import logging
import math
from datetime import datetime
from datetime import timedelta
from datetime import timezone

from plone.app.asyncjobs import access
from plone.app.asyncjobs.engine import admin
from plone.app.asyncjobs.engine import listing
from plone.app.asyncjobs.engine.agent import MAX_SIZE as MAX_AGENT_SIZE
from plone.app.asyncjobs.engine.cancel import cancel_request
from plone.app.asyncjobs.engine.clock import utcnow
from plone.app.asyncjobs.engine.exceptions import BadStatusError
from plone.app.asyncjobs.engine.failure import is_failure
from plone.app.asyncjobs.engine.failure import summary as failure_summary
from plone.app.asyncjobs.engine.failure import traceback_text
from plone.app.asyncjobs.engine.ids import object_id
from plone.app.asyncjobs.engine.internal import is_internal
from plone.app.asyncjobs.engine.interfaces import IJob
from plone.app.asyncjobs.engine.naming import brief_repr
from plone.app.asyncjobs.engine.naming import cut
from plone.app.asyncjobs.engine.naming import job_name
from plone.app.asyncjobs.engine.naming import shown_arguments
from plone.app.asyncjobs.engine.progress import progress_of
from plone.app.asyncjobs.engine.status import ACTIVE
from plone.app.asyncjobs.engine.status import CANCELLED
from plone.app.asyncjobs.engine.status import COMPLETED
from plone.app.asyncjobs.engine.status import DISPATCHER_STATES
from plone.app.asyncjobs.engine.status import FAILED
from plone.app.asyncjobs.engine.status import SUCCEEDED
from plone.app.asyncjobs.engine.status import dispatcher_state
from plone.app.asyncjobs.engine.status import outcome_of
from plone.app.asyncjobs.engine.timeouts import time_limit


logger = logging.getLogger("plone.app.asyncjobs.admin")

#: The job lists: pending, active, completed (succeeded) and failed.
STATES = listing.STATES
#: Page sizes a listing accepts, and the default.
MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 20
#: How many jobs a filtered page reads at most before it offers to go on.
SCAN_LIMIT = 1000
#: Sort orders: name -> reverse the natural order?
SORTS = {"natural": False, "reverse": True}
#: The largest age in days :func:`purge` accepts.
MAX_PURGE_DAYS = 36500
#: How many characters of an argument's or a result's repr are shown.
SHORT_LIMIT = 200
#: How many jobs of a list a site's counts read at most (they read the jobs
#: to know their site; the database-wide counts read none).
COUNT_LIMIT = 5000


class QueryError(ValueError):
    """A listing parameter or an action argument is not acceptable."""

    def __init__(self, field, message):
        super().__init__(f"{field}: {message}")
        self.field = field


#: How deeply the arrays and objects of JSON input may nest: a REST body
#: (its objects are flat: depth 1), a saved schedule's arguments.  Deeper
#: values would only risk the recursion limit (parsing, pickling).
MAX_JSON_DEPTH = 16


def json_depth(value):
    """How deeply the arrays and objects of a JSON value nest (a scalar: 0),
    found without recursion."""
    depth, level = 0, [value]
    while True:
        containers = [item for item in level if isinstance(item, (list, dict))]
        if not containers:
            return depth
        depth += 1
        level = [item for container in containers
                 for item in (container.values() if isinstance(container, dict) else container)]


# -- facts -----------------------------------------------------------------------


def iso(moment):
    return None if moment is None else moment.astimezone(timezone.utc).isoformat()


def job_id(job):
    return str(object_id(job)[0])


def get_job(queues, text, scope):
    """The job whose id is ``text`` in ``scope``; ``LookupError`` if none
    (the same for an id of another site's job or of something else)."""
    try:
        oid = int(text)
    except (TypeError, ValueError):
        raise LookupError(f"there is no job {text!r}") from None
    if not 0 < oid < 2 ** 64:  # ZODB oids are 8 bytes
        raise LookupError(f"there is no job {text!r}")
    job = admin.find_job(queues._p_jar, oid)
    if removed(job) or not scope.includes(job):
        raise LookupError(f"there is no job {oid}")
    return job


def removed(job):
    """Whether ``job`` finished and then left the history of its agent or
    queue (removed, purged or too old); such a job stays loadable until
    the database is packed.  A callback goes with the job it belongs to."""
    if job.status != COMPLETED:
        return False
    keeper = job.parent
    if IJob.providedBy(keeper):
        return removed(keeper)
    history = getattr(keeper, "completed", None)
    if history is None:
        return False
    # A job that has just completed is held by its agent until the agent
    # moves it to its history.
    held = getattr(keeper, "holds", None)
    return job not in history and not (held is not None and held(job))


def outcome(job):
    """How ``job`` ended (:func:`.engine.status.outcome_of`: a cancelled
    job is listed with the failed ones), or ``None`` while not completed."""
    if job.status != COMPLETED:
        return None
    return outcome_of(job.result)


def cancel_requested(job):
    """When a cancel was requested for ``job`` while it still runs (ISO
    8601; see :mod:`.engine.cancel`), or ``None``: a job that ignores the
    request goes on, and shows this until it ends."""
    request = cancel_request(job)
    if job.status != ACTIVE or request is None:
        return None
    return iso(request[0])


def cancel_reason(job):
    """Why ``job`` was cancelled (:func:`cancel` says by whom), or ``None``
    if it was not.  A cancelled job has its reason while its callbacks
    still run, before it is completed."""
    result = job.result
    if outcome_of(result) == CANCELLED:
        return cut(result.getErrorMessage(), SHORT_LIMIT)
    return None


def shorten(value):
    """The repr of ``value`` for people, cut after :data:`SHORT_LIMIT`
    characters (stored objects named by class and id)."""
    return cut(brief_repr(value), SHORT_LIMIT)


def _execution(job):
    return getattr(job, "execution", None)


def queued_by(job):
    execution = _execution(job)
    if execution is None:
        return None
    if execution.user_id is None:
        return {"id": None, "user_folder": None, "anonymous": True}
    folder = execution.user_folder_path
    return {"id": execution.user_id,
            "user_folder": folder if isinstance(folder, str) else "/".join(folder),
            "anonymous": False}


def context_path(job):
    execution = _execution(job)
    if execution is None or execution.context_path is None:
        return None
    return "/".join(execution.context_path)


def _result_text(job):
    result = job.result
    if is_failure(result):
        return cut(failure_summary(result), SHORT_LIMIT)
    if IJob.providedBy(result):
        return f"waiting for job {job_id(result)}"
    if result is None and job.status != COMPLETED:
        return None
    return shorten(result)


def describe(job, detail=False, traceback=False):
    """What a listing (or, with ``detail``, a job page) shows of ``job``;
    its traceback only with ``traceback`` (see :func:`.access.may_see_tracebacks`)."""
    queue = job.queue
    agent = job.agent
    progress = progress_of(job)
    facts = {
        "id": job_id(job),
        "queue": None if queue is None else queue.name,
        "status": job.status,
        "state": listing.list_of(job),
        "outcome": outcome(job),
        "callable": job_name(job),
        "queued_by": queued_by(job),
        "context_path": context_path(job),
        "begin_after": iso(job.begin_after),
        "begin_by_seconds": None if job.begin_by is None else job.begin_by.total_seconds(),
        "started": iso(job.active_start),
        "ended": iso(job.active_end),
        "attempts": job.attempts,
        "progress": None if progress is None else progress.as_dict(),
        "result": _result_text(job),
        "cancel_reason": cancel_reason(job),
        "cancel_requested": cancel_requested(job),
        "dispatcher": None if agent is None else str(agent.parent.UUID),
        "agent": None if agent is None else agent.name,
    }
    if detail:
        facts.update(_details(job, traceback))
    return facts


def _details(job, traceback):
    # A cancelled job's "traceback" is the cancel call's: its reason says it all.
    failed = outcome_of(job.result) == FAILED
    retry_of = job.get_annotation(admin.RETRY_OF)
    policy = job.retry_policy
    args, kwargs = shown_arguments(job, shorten)
    return {
        "args": args,
        "kwargs": kwargs,
        "quota_names": list(job.quota_names),
        "priority": job.priority,
        "unique_key": job.unique_key,
        "timeout": time_limit(job),
        "retry_policy": job.retry_policy_factory or "default",
        "retry_history": None if policy is None else brief_repr(getattr(policy, "data", policy)),
        "retry_of": None if retry_of is None else str(retry_of),
        "retried_as": [str(oid) for oid in admin.retries(job)],
        "traceback": traceback_text(job.result) if traceback and failed else None,
        "traceback_hidden": not traceback and failed,
        "callbacks": [describe(callback) for callback in job.callbacks
                      if IJob.providedBy(callback) and not is_internal(callback)],
        "subjobs": [describe(part) for part in job.args if IJob.providedBy(part)]
        if job.load_arguments() else [],
        "assigner": None if job.assigner_uuid is None else str(job.assigner_uuid),
    }


# -- dispatchers --------------------------------------------------------------------


def count_jobs(name, queue, scope):
    """``({state: count}, capped)``: the jobs of the queue ``name`` in
    ``scope`` by list, and the lists whose count stopped at
    :data:`COUNT_LIMIT` jobs read (a lower bound then)."""
    if scope.database_wide:
        return listing.count_jobs(queue), []
    counts, capped = {}, []
    for state in STATES:
        page = listing.find_jobs({name: queue}, state, match=lambda job: shown(job, scope),
                                 size=COUNT_LIMIT, scan_limit=COUNT_LIMIT)
        counts[state] = len(page.jobs)
        if page.exhausted or page.after is not None:
            capped.append(state)
    return counts, capped


def overview(queues, scope, now=None):
    """Queues with the counts of the jobs in ``scope``, dispatchers with
    their agents (and the ``scope``'s jobs they hold), and the last hour's
    work in ``scope``."""
    now = now or utcnow()
    hour_ago = now - timedelta(hours=1)
    dispatchers = {}
    completed = failed = 0
    queue_facts = []
    for name, queue in queues.items():
        counts, capped = count_jobs(name, queue, scope)
        queue_facts.append({"name": name, "counts": counts, "counts_capped": capped,
                            "quotas": {q: {"size": quota.size, "filled": len(quota)}
                                       for q, quota in queue.quotas.items()}})
        for history in listing.histories(queue):
            failures = _count(history.since(hour_ago, FAILED), scope)
            failed += failures
            completed += failures + _count(history.since(hour_ago, SUCCEEDED), scope)
        for uuid, record in queue.dispatchers.items():
            facts = dispatchers.setdefault(str(uuid), {
                "uuid": str(uuid), "queues": {}, "states": set(), "paused": False,
                "last_ping": None, "activated": None, "process": None})
            facts["states"].add(dispatcher_state(record, now))
            facts["paused"] = facts["paused"] or record.paused
            facts["last_ping"] = max(filter(None, (facts["last_ping"], record.last_ping)),
                                     default=None)
            facts["activated"] = min(filter(None, (facts["activated"], record.activated)),
                                     default=None)
            if record.process is not None:
                facts["process"] = f"{record.process[0]}:{record.process[1]}"
            facts["queues"][name] = [
                {"name": agent_name, "size": agent.size,
                 "jobs": [job_id(job) for job in agent if shown(job, scope)]}
                for agent_name, agent in record.items()]
    for facts in dispatchers.values():
        states = facts.pop("states")
        # The worst state any of its queue records is in.
        facts["state"] = next(s for s in DISPATCHER_STATES if s in states)
        activated = facts["activated"]
        facts["uptime_seconds"] = None if activated is None else (now - activated).total_seconds()
        facts["last_ping"] = iso(facts["last_ping"])
        facts["activated"] = iso(activated)
    return {"queues": queue_facts,
            "dispatchers": sorted(dispatchers.values(), key=lambda d: d["uuid"]),
            "last_hour": {"completed": completed, "failed": failed}}


def shown(job, scope):
    """Whether ``job`` is listed and counted in ``scope``: it is in it, and
    it is not one the engine made for itself."""
    return scope.includes(job) and not is_internal(job)


def _count(jobs, scope):
    # The database-wide count reads keys only (see History.since).
    if scope.database_wide:
        return sum(1 for _ in jobs)
    return sum(1 for job in jobs if scope.includes(job))


# -- listing -----------------------------------------------------------------------


def _text_of(job):
    """What free-text search looks at."""
    parts = [job_name(job), context_path(job) or "", _result_text(job) or ""]
    user = queued_by(job)
    if user and user["id"]:
        parts.append(user["id"])
    if job.load_arguments():  # not for an argument whose class is gone
        parts.extend(brief_repr(value) for value in job.args)
    return "\n".join(parts).lower()


def _parse_time(field, text):
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise QueryError(field, f"not an ISO 8601 date and time: {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment


def _text_params(params):
    """``params.get`` giving text: Zope's typed parameters (``size:float``,
    ``since:date``, ``queue.a:record``) are checked as the text they show."""
    def get(name):
        value = params.get(name)
        return None if value is None else str(value)
    return get


class JobQuery:
    """A listing request, built from parameters (read as text) and checked.

    Parameters: ``state`` (one of :data:`STATES`, default ``pending``),
    ``queue`` (name; repeatable as a list), ``user`` (user id, exact),
    ``callable`` (substring of the dotted name), ``text`` (substring of
    callable, context path, user, arguments and result), ``since`` and
    ``until`` (ISO 8601; naive means UTC), ``sort`` (``natural`` or
    ``reverse``), ``after`` (the cursor of the previous page) and ``size``.
    """

    def __init__(self, params):
        get = _text_params(params)
        self.state = get("state") or listing.PENDING
        if self.state not in STATES:
            raise QueryError("state", f"must be one of {', '.join(STATES)}")
        queue = params.get("queue")
        if queue:
            names = queue if isinstance(queue, (list, tuple)) else [queue]
            self.queues = [str(name) for name in names]
        else:
            self.queues = None
        self.user = get("user") or None
        self.callable = (get("callable") or "").strip() or None
        self.text = (get("text") or "").strip().lower() or None
        self.since = _parse_time("since", get("since")) if get("since") else None
        self.until = _parse_time("until", get("until")) if get("until") else None
        sort = get("sort") or "natural"
        if sort not in SORTS:
            raise QueryError("sort", f"must be one of {', '.join(SORTS)}")
        self.sort = sort
        try:
            self.after = listing.decode_cursor(get("after")) if get("after") else None
        except ValueError as error:
            raise QueryError("after", str(error)) from None
        size = get("size") or DEFAULT_PAGE_SIZE
        try:
            self.size = int(size)
        except ValueError:
            raise QueryError("size", f"not a number: {size!r}") from None
        if not 1 <= self.size <= MAX_PAGE_SIZE:
            raise QueryError("size", f"must be between 1 and {MAX_PAGE_SIZE}")

    def match(self, job):
        if self.user is not None:
            user = queued_by(job)
            if user is None or user["id"] != self.user:
                return False
        if self.callable is not None and self.callable not in job_name(job):
            return False
        return self.text is None or self.text in _text_of(job)

    def filtered(self):
        return any(v is not None for v in (self.user, self.callable, self.text))

    def run(self, queues, scope):
        """``{"items", "next", "scanned", "exhausted"}`` for one page of the
        jobs in ``scope``."""
        def match(job):
            return shown(job, scope) and self.match(job)
        page = listing.find_jobs(
            queues, self.state, queue_names=self.queues, match=match,
            since=self.since, until=self.until, after=self.after,
            reverse=SORTS[self.sort], size=self.size, scan_limit=max(SCAN_LIMIT, self.size))
        return {
            "items": [describe(job) for _, job in page.jobs],
            "next": None if page.after is None else listing.encode_cursor(page.after),
            "scanned": page.scanned,
            "exhausted": page.exhausted,
        }


# -- actions -----------------------------------------------------------------------


def is_running(job):
    """Whether ``job`` runs now (so :func:`cancel` asks it to stop)."""
    return job.status == ACTIVE


def cancel(job, actor):
    """Cancel a pending job, or ask a running one to stop (see
    :func:`.engine.admin.cancel`), in ``actor``'s name."""
    if is_running(job):
        admin.cancel(job, f"cancelled while running by {actor}")
        logger.info("%s asked running job %s (%s) to stop", actor, job_id(job), job_name(job))
        return
    admin.cancel(job, f"cancelled by {actor}")
    logger.info("%s cancelled job %s (%s)", actor, job_id(job), job_name(job))


def retry(job, actor, site):
    """Queue a copy of ``job``, which runs as the job's user: if the current
    user of ``site`` may make it (:func:`.access.check_run_as`)."""
    access.check_run_as(job, site)
    new = admin.retry(job)
    logger.info("%s retried job %s (%s) as job %s", actor, job_id(job), job_name(job),
                job_id(new))
    return new


def retry_refusal(job, site):
    """Why :func:`retry` would refuse ``job`` for the current user of
    ``site`` (a message), or ``None`` if it would not."""
    try:
        admin.check_retry(job)
        access.check_run_as(job, site)
    except (BadStatusError, access.RunAsRefused) as error:
        return str(error)
    return None


def remove(job, actor):
    admin.forget(job)
    logger.info("%s removed finished job %s (%s)", actor, job_id(job), job_name(job))


def purge(queues, days, actor):
    """Forget jobs finished more than ``days`` days ago; return how many."""
    try:
        days = float(days)
    except (TypeError, ValueError):
        raise QueryError("days", f"not a number: {days!r}") from None
    if not (math.isfinite(days) and 0 <= days <= MAX_PURGE_DAYS):
        raise QueryError("days", f"must be between 0 and {MAX_PURGE_DAYS}")
    removed = admin.purge(queues, utcnow() - timedelta(days=days))
    logger.info("%s purged %d jobs finished more than %s days ago", actor, removed, days)
    return removed


def _records(queues, uuid):
    records = [queue.dispatchers[key] for queue in queues.values()
               for key in queue.dispatchers.keys() if str(key) == uuid]
    if not records:
        raise LookupError(f"there is no dispatcher {uuid!r}")
    return records


def set_agent_size(queues, uuid, queue_name, agent_name, size, actor):
    """Change the size of an agent; the worker follows at its next poll."""
    try:
        size = int(size)
    except (TypeError, ValueError):
        raise QueryError("size", f"not a number: {size!r}") from None
    if not 0 <= size <= MAX_AGENT_SIZE:
        raise QueryError("size", f"must be between 0 and {MAX_AGENT_SIZE}")
    if queue_name not in queues:
        raise LookupError(f"there is no queue {queue_name!r}")
    [record] = [r for r in _records(queues, uuid) if r.queue is queues[queue_name]] or [None]
    if record is None or agent_name not in record:
        raise LookupError(f"dispatcher {uuid} has no agent {agent_name!r} in queue {queue_name!r}")
    old = record[agent_name].size
    record[agent_name].size = size
    logger.info("%s changed the size of agent %r of dispatcher %s in queue %r from %d to %d",
                actor, agent_name, uuid, queue_name, old, size)


def pause(queues, uuid, actor):
    """Stop a dispatcher's agents from claiming jobs in every queue."""
    for record in _records(queues, uuid):
        record.pause()
    logger.info("%s paused the agents of dispatcher %s", actor, uuid)


def resume(queues, uuid, actor):
    for record in _records(queues, uuid):
        record.resume()
    logger.info("%s resumed the agents of dispatcher %s", actor, uuid)
