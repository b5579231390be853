"""Find jobs across queues a page at a time, without reading them all.

Jobs are kept where the engine needs them: pending jobs in their queue's
lanes (by due time), running ones in the agents that hold them, finished
ones in the agents' histories (and the queue's own, for cancelled jobs),
succeeded and failed apart.  Each of these is a sorted tree, so a listing
merges the trees lazily and stops as soon as a page is full: a page costs
about the same with a hundred jobs in the database as with a million.

Every listed job comes with a sort key; passing the last key of a page as
``after`` gives the next page (keys are tuples of integers; :func:`encode_cursor`
and :func:`decode_cursor` turn them into URL-safe strings and back).

A ``match`` predicate (say, "queued by this user") needs to look at each
job, so a filtered listing reads at most ``scan_limit`` jobs per page and
reports where it stopped; the caller offers to continue from there.
"""
import heapq
from dataclasses import dataclass
from dataclasses import field

from plone.app.asyncjobs.engine.clock import to_microseconds
from plone.app.asyncjobs.engine.ids import object_id
from plone.app.asyncjobs.engine import status
from plone.app.asyncjobs.engine.internal import is_internal


#: The lists, named after the statuses and outcome of their jobs: waiting
#: (:data:`.status.WAITING`), in progress (:data:`.status.IN_PROGRESS`),
#: completed and succeeded, completed and failed (cancelled jobs too).
PENDING = status.PENDING
RUNNING = status.ACTIVE
SUCCEEDED = status.COMPLETED
FAILED = status.FAILED
#: The lists, in the order an administrator reads them.
STATES = (PENDING, RUNNING, SUCCEEDED, FAILED)
#: The lists of jobs that have not finished.
UNFINISHED = (PENDING, RUNNING)

#: The outcome (:func:`.status.outcome_of`) each list of finished jobs holds;
#: the histories keep jobs by it.
_OUTCOMES = {SUCCEEDED: status.SUCCEEDED, FAILED: status.FAILED}


def list_of(job):
    """The list (:data:`STATES`) ``job`` appears in."""
    if job.status == status.COMPLETED:
        return SUCCEEDED if status.outcome_of(job.result) == status.SUCCEEDED else FAILED
    if job.status in status.WAITING:
        return PENDING
    return RUNNING


@dataclass
class Page:
    """One page of a listing.

    ``jobs`` are ``(key, job)`` pairs; ``after`` is the key to continue from
    (``None`` once everything was listed); ``scanned`` is how many jobs
    were looked at, ``exhausted`` whether the scan limit stopped the page
    before it was full.
    """

    jobs: list = field(default_factory=list)
    after: tuple | None = None
    scanned: int = 0
    exhausted: bool = False


def find_jobs(queues, state, queue_names=None, match=None, since=None, until=None,
              after=None, reverse=False, size=20, scan_limit=1000):
    """Return a :class:`Page` of the jobs in ``state`` (one of :data:`STATES`).

    Order: pending jobs by due time, running ones latest started first,
    finished ones latest finished first; ``reverse`` turns it round.
    ``queue_names`` restricts the queues (default: all); ``since`` and
    ``until`` (aware datetimes) bound the due, start or finish time;
    ``match(job)`` filters further.
    """
    if state not in STATES:
        raise ValueError(f"state must be one of {', '.join(STATES)}, not {state!r}")
    if size < 1 or scan_limit < size:
        raise ValueError("size must be at least 1 and scan_limit at least size")
    chosen = [queue for name, queue in queues.items()
              if queue_names is None or name in queue_names]
    items = _merged(chosen, state, after, reverse)
    if state == PENDING:
        low, high = since, until
    else:  # the keys of running and finished jobs count backwards in time
        low, high = until, since
    in_range = _bounded(items, _time_key(low, state), _time_key(high, state), reverse)
    page = Page()
    for key, job in in_range:
        if page.scanned >= scan_limit:
            page.exhausted = True
            return page
        page.scanned += 1
        page.after = key
        if match is None or match(job):
            if len(page.jobs) == size:
                page.after = page.jobs[-1][0]
                return page
            page.jobs.append((key, job))
    page.after = None
    return page


def _merged(queues, state, after, reverse):
    if state == PENDING:
        sources = [queue.items(after, reverse) for queue in queues]
    elif state == RUNNING:
        sources = [_running_items(queues, after, reverse)]
    else:
        outcome = _OUTCOMES[state]
        sources = [history.items(outcome, after, reverse)
                   for queue in queues for history in histories(queue)]
    return heapq.merge(*sources, key=lambda item: item[0], reverse=reverse)


def histories(queue):
    """The histories of finished jobs of ``queue``: its own and its agents'."""
    if queue._completed is not None:
        yield queue._completed
    for record in queue.dispatchers.values():
        for agent in record.values():
            yield agent.completed


def _running_jobs(queue):
    for record in queue.dispatchers.values():
        for agent in record.values():
            for job in agent:
                if job.status in status.IN_PROGRESS:
                    yield job


def _running_items(queues, after, reverse):
    # Agents hold few jobs (their size, plus composite jobs waiting), so
    # these are sorted in memory.
    items = sorted(((running_key(job), job) for queue in queues for job in _running_jobs(queue)),
                   key=lambda item: item[0], reverse=reverse)
    if after is not None:
        items = [item for item in items
                 if (item[0] < after if reverse else item[0] > after)]
    return iter(items)


def running_key(job):
    """The sort key of a running job: latest start first, then by oid."""
    start = job.active_start
    return (-to_microseconds(start) if start is not None else 0, object_id(job)[0])


def _time_key(moment, state):
    if moment is None:
        return None
    microseconds = to_microseconds(moment)
    return microseconds if state == PENDING else -microseconds


def _bounded(items, low, high, reverse):
    """Keep items whose key's time is within [low, high]; stop at the far end."""
    for key, job in items:
        moment = key[0]
        if low is not None and moment < low:
            if reverse:
                return
            continue
        if high is not None and moment > high:
            if reverse:
                continue
            return
        yield key, job


def count_jobs(queue):
    """``{state: count}`` for ``queue`` without reading its jobs (but the running ones).

    Jobs the engine made for itself (:mod:`.internal`) are not counted
    among the running ones, and histories do not keep them; one waiting
    in the queue (for a moment: it is queued first in line) is counted
    among the pending ones, since that count reads no job.
    """
    counts = dict.fromkeys(STATES, 0)
    counts[PENDING] = len(queue)
    for history in histories(queue):
        counts[SUCCEEDED] += history.succeeded_count()
        counts[FAILED] += history.failed_count()
    counts[RUNNING] = sum(1 for job in _running_jobs(queue) if not is_internal(job))
    return counts


def encode_cursor(key):
    """A key as a URL-safe string: its integers joined by ``.``."""
    return ".".join(str(part) for part in key)


def decode_cursor(text):
    """The key :func:`encode_cursor` made; ``ValueError`` for anything else."""
    parts = text.split(".")
    try:
        key = tuple(int(part) for part in parts)
    except ValueError:
        raise ValueError(f"not a listing cursor: {text!r}") from None
    if len(key) != 2:
        raise ValueError(f"not a listing cursor: {text!r}")
    return key
