"""Quotas: limits on how many jobs with a name run at once, across all workers.

A job lists the quotas it counts against in ``quota_names``.  A claim skips
a job while any of its quotas is full, and adds the job to them.  A job
holds its slots while it is assigned or active: the next claim of the quota
frees the slots of jobs that have since got a result or gone back to their
queue (so completing a job never writes the quota).  Quotas are strict:
the holder list is a plain tuple without conflict resolution, so two
workers claiming the last slot at once conflict and one of them retries.

Creating or removing a quota conflicts with every claim, committed since
it began or committing after it, that entered or skipped a quota of that
name: the claim reads the set of quotas as current, and creating or
removing one writes that set; creating reads the agents' held jobs, which
it counts, as current.  Otherwise a job claimed meanwhile would be missing
from a re-created quota, which would let one more job run.
"""
from persistent import Persistent

from plone.app.asyncjobs.engine.status import ACTIVE
from plone.app.asyncjobs.engine.status import ASSIGNED

from plone.app.asyncjobs.engine.container import Container


class Quota(Persistent):
    """At most ``size`` jobs named ``name`` active at once."""

    def __init__(self, name, size=1):
        self.name = name
        self.size = size
        self._jobs = ()

    def __setattr__(self, name, value):
        # plone.app.async changed sizes by setting them: a bad one left the
        # jobs naming the quota pending for ever.
        if name == "size":
            value = _checked_size(value)
        super().__setattr__(name, value)

    def holders(self):
        """The jobs that still occupy a slot (assigned or active)."""
        return tuple(job for job in self._jobs if job.status in (ASSIGNED, ACTIVE))

    @property
    def filled(self):
        return len(self.holders()) >= self.size

    def __len__(self):
        return len(self.holders())

    def __iter__(self):
        return iter(self.holders())

    def __contains__(self, job):
        return any(held is job for held in self._jobs)

    def add(self, job):
        if job in self:
            return
        holders = self.holders()
        if len(holders) >= self.size:
            raise ValueError(f"quota {self.name!r} is full")
        self._jobs = holders + (job,)

    def remove(self, job):
        if job in self:
            self._jobs = tuple(held for held in self._jobs if held is not job)

    def __repr__(self):
        return f"<Quota {self.name!r} {len(self)}/{self.size}>"


class Quotas(Container):
    """The quotas of one queue, by name."""

    def create(self, name, size=1):
        """Create and return the quota ``name``; it must not exist yet."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"a quota name must be a non-empty string, not {name!r}")
        if name in self._items:
            raise ValueError(f"quota {name!r} exists already")
        quota = self._items[name] = Quota(name, size)
        # Jobs that run under a quota of this name removed before hold the
        # new one: recreating a quota must not let more jobs run at once.
        quota._jobs = tuple(job for job in self._held_jobs() if name in job.quota_names)
        self._p_changed = True  # see the module docstring
        return quota

    def _held_jobs(self):
        """The jobs that the agents of this queue hold, assigned or active,
        read as current (see the module docstring)."""
        queue = self.parent
        if queue is None:
            return
        queue.dispatchers.read_as_current()
        for record in queue.dispatchers.values():
            record.read_as_current()
            for agent in record.values():
                agent.read_as_current()
                yield from (job for job in agent if job.status in (ASSIGNED, ACTIVE))

    def remove(self, name):
        """Remove the quota; jobs naming it are no longer limited by it."""
        del self._items[name]
        self._p_changed = True  # see the module docstring

    def check_names(self, names):
        """Raise ``ValueError`` for the first name that is not a quota here."""
        for name in names:
            if name not in self._items:
                raise ValueError(
                    f"unknown quota name {name!r}; create it first with "
                    f"queue.quotas.create({name!r}, size=...)"
                )

    def admits(self, job):
        """Tell whether every quota of ``job`` has room for it."""
        for name in job.quota_names:
            quota = self._items.get(name)
            if quota is not None and quota.filled and job not in quota:
                return False
        return True

    def enter(self, job):
        """Add ``job``, claimed, to its quotas (see the module docstring)."""
        for name in job.quota_names:
            quota = self._items.get(name)
            if quota is not None:
                quota.add(job)
        if job.quota_names and self._p_jar is not None:
            self._p_jar.readCurrent(self)

    def leave(self, job):
        for name in job.quota_names:
            quota = self._items.get(name)
            if quota is not None:
                quota.remove(job)


def _checked_size(size):
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise ValueError(f"a quota size must be a positive integer, not {size!r}")
    return size
