"""Unique jobs: at most one job of a queue holds a given key.

``Queue.put(job, unique_key=key)`` looks ``key`` up in the queue's unique
index (:class:`UniqueKeys`, key -> job).  If the job found there *holds* the
key (:func:`holds`: it is in a status its ``unique_while`` names), ``put``
returns that job, or raises :class:`~.exceptions.DuplicateJobError` if
asked to, and queues nothing.  Otherwise the new job is written under the
key, in the putting transaction.

``unique_while`` is :data:`WHILE_PENDING` (the default: the key is held
until a worker claims the job) or :data:`WHILE_ACTIVE` (held until the job
completed: claimed, running and running callbacks count as active).

Concurrent producers of one key: ZODB merges concurrent writes to
different keys of a BTree, never two writes to one key.  A ``put`` writes
the key whether it queues a job or finds one holding it (it writes the
same job back), so of two transactions putting one key, or of a put and
the claim that releases the key, the one that commits second conflicts;
retried, it sees the first one's outcome.  So the job returned to a
producer was still pending (or active) when its transaction committed.

The index is spread over :data:`SHARDS` trees by a hash of the key.  A
producer's insert that splits a bucket conflicts with every concurrent
write to the same tree (BTrees check that the tree node they inserted
through is still current), so one tree would make about one put in a
hundred conflict for each concurrent producer; spread out, a split
conflicts only with the producers writing the same shard.

Release: whether a job holds its key is decided from its status every
time, so an entry left behind never blocks its key.  Entries are removed,
so that the index does not grow with every key ever used, as the job
leaves its statuses: when a worker claims it (:data:`WHILE_PENDING`),
when it is cancelled or failed while pending, and when its agent moves
it to its history once completed (a job completed after its worker was
found dead keeps its entry, which blocks nothing, until its key is put
again).  A job queued again (a retry after an interruption
or a reschedule) takes its key back unless another job holds it by then;
if one does, both stay queued: the retried job was already claimed when
the other was put.  A copy (:meth:`.job.Job.copy`, as retried from the
console) has the key of its original, and ``put`` treats it like any job
with that key.
"""
import zlib

from BTrees.OOBTree import OOBTree

from plone.app.asyncjobs.engine.status import ACTIVE
from plone.app.asyncjobs.engine.status import ASSIGNED
from plone.app.asyncjobs.engine.status import CALLBACKS
from plone.app.asyncjobs.engine.status import PENDING


#: The key is held while the job is pending.
WHILE_PENDING = (PENDING,)
#: The key is held until the job completed.
WHILE_ACTIVE = (PENDING, ACTIVE)

_HOLDING = {
    WHILE_PENDING: frozenset({PENDING}),
    WHILE_ACTIVE: frozenset({PENDING, ASSIGNED, ACTIVE, CALLBACKS}),
}

#: What ``put`` does when the key is held: return the holder, or raise.
ON_DUPLICATE = ("return", "raise")

#: How many trees the unique index of a queue is spread over.
SHARDS = 16


class UniqueKeys(OOBTree):
    """A queue's unique index: key -> the job that holds or held it.

    Producers putting different keys insert into the same buckets; larger
    buckets split (which ZODB cannot merge with concurrent inserts) less
    often.
    """

    max_leaf_size = 250


def new_index():
    """A new unique index: :data:`SHARDS` trees."""
    return tuple(UniqueKeys() for _ in range(SHARDS))


def shard(index, key):
    """The tree of ``index`` that holds ``key`` (the same in every process)."""
    return index[zlib.crc32(key.encode("utf-8")) % len(index)]


def check_key(key):
    """Return ``key`` if it can be a unique key (a non-empty string), else raise."""
    if not isinstance(key, str):
        raise TypeError(f"unique_key must be a string, not {key!r}")
    if not key:
        raise ValueError("unique_key must not be empty")
    return key


def check_while(statuses):
    """Return ``statuses`` as :data:`WHILE_PENDING` or :data:`WHILE_ACTIVE`, else raise."""
    if isinstance(statuses, str):
        raise TypeError(f"unique_while must be a tuple of statuses, not the string {statuses!r}")
    for choice in (WHILE_PENDING, WHILE_ACTIVE):
        if set(statuses) == set(choice):
            return choice
    raise ValueError(f"unique_while must be {WHILE_PENDING!r} or {WHILE_ACTIVE!r}, "
                     f"not {statuses!r}")


def check_on_duplicate(choice):
    if choice not in ON_DUPLICATE:
        raise ValueError(f"on_duplicate must be one of {ON_DUPLICATE!r}, not {choice!r}")
    return choice


def holds(job):
    """Whether ``job`` holds its unique key now (it has one and is in a
    status its ``unique_while`` names)."""
    return job.unique_key is not None and job.status in _HOLDING[job.unique_while]


def kept_while_active(job):
    """Whether ``job`` keeps its key after it was claimed."""
    return job.unique_while == WHILE_ACTIVE
