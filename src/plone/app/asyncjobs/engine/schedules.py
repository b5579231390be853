"""Recurring jobs: schedules, and exactly one job per slot.

A :class:`Schedule` declares what to run and when: a trigger (a cron
expression in a time zone, or an interval: see :mod:`.triggers`), the
callable (a dotted name) with its arguments, the queue, quotas and retry
policy of its jobs, what to do with missed slots, and whether it is
enabled.  :func:`install` stores it in the database, in the
:class:`Schedules` container next to the queues; from then on the
dispatchers of every worker process queue its jobs.

Exactly one job per slot
    Each dispatcher calls :func:`queue_due_slots` on its polls and when a
    slot comes due (see :class:`.slottimer.SlotTimer`).  For every due
    slot it queues an ordinary job *and* writes the slot into the
    schedule's record (:attr:`ScheduleRecord.last_slot`, and the job
    under the slot in :attr:`ScheduleRecord.runs`), in one transaction.
    Two workers that race for a slot both write the record: ZODB commits
    one transaction and raises ``ConflictError`` in the other, whose retry
    finds the slot taken.  No process leads; the database decides.  Once
    committed, the slot's job is a durable job like any other: a worker
    that dies while running it leaves it to its retry policy.

Misfires
    When no dispatcher queued slots for a while, several are due at once.
    A due slot older than the schedule's ``misfire_grace`` (default one
    second: a dispatcher queues a slot within milliseconds) is *missed*,
    and the ``misfire`` policy decides: :data:`ONCE` (the default) queues
    one job for all the due slots, at the latest of them; :data:`ALL`
    queues one job per due slot (at most :data:`MAX_CATCH_UP` per
    transaction, the rest in the next); :data:`SKIP` drops the missed slots
    and queues the on-time ones.

Pausing
    A paused (or not ``enabled``) schedule queues nothing; resuming it
    starts from the resume time: the slots of the pause are not misfires.
    Installing a schedule whose trigger changed also starts from then.

Broken schedules
    A slot whose job cannot be made or queued (its queue was removed, say)
    is recorded among the runs with the error, and not retried.  A schedule
    whose slots cannot be computed (a stored trigger that fails) queues
    nothing: the error is recorded among its runs and logged once, and the
    other schedules go on.

A schedule removed from the code stays in the database (workers of an
older release may still declare it) until :meth:`Schedules.remove`.
"""
import pkgutil
from dataclasses import dataclass
from dataclasses import field
from datetime import timedelta

from BTrees.LOBTree import LOBTree
from persistent import Persistent
from ZODB.POSException import ConflictError

from plone.app.asyncjobs.engine import retry
from plone.app.asyncjobs.engine.clock import EPOCH
from plone.app.asyncjobs.engine.clock import to_microseconds
from plone.app.asyncjobs.engine.clock import utcnow
from plone.app.asyncjobs.engine.container import Container
from plone.app.asyncjobs.engine.job import Job
from plone.app.asyncjobs.engine.log import events
from plone.app.asyncjobs.engine.log import trace
from plone.app.asyncjobs.engine.queue import KEY as QUEUES_KEY
from plone.app.asyncjobs.engine.triggers import Cron
from plone.app.asyncjobs.engine.triggers import Interval


#: The root key of the :class:`Schedules` container, in the database of
#: the queues.
KEY = "plone.app.asyncjobs.schedules"

#: Misfire policies (see the module documentation).
ONCE, ALL, SKIP = "once", "all", "skip"
MISFIRE_POLICIES = (ONCE, ALL, SKIP)

#: How late a slot may be queued before it counts as missed.
MISFIRE_GRACE = timedelta(seconds=1)
#: The smallest ``misfire_grace`` that counts: a slot's timer fires, and
#: its job is committed, a little after the slot, so a smaller grace (0,
#: say) would count every slot as missed; it counts as this one.
MIN_MISFIRE_GRACE = timedelta(seconds=0.1)

#: At most this many jobs per schedule and transaction (policy ALL).
MAX_CATCH_UP = 100

#: How many recent runs a record keeps (for the console).
RUNS_KEPT = 50


def dotted_name(func):
    """``'module:qualname'`` of a module-level callable, or a string as it is
    once it resolves; raises ``ValueError`` otherwise."""
    if isinstance(func, str):
        name = func
    else:
        module = getattr(func, "__module__", None)
        qualname = getattr(func, "__qualname__", None)
        if not module or not qualname or "<" in qualname:
            raise ValueError(f"{func!r} is not a module-level callable; give its dotted name")
        name = f"{module}:{qualname}"
    try:
        found = pkgutil.resolve_name(name)
    except (ImportError, AttributeError, ValueError) as error:
        raise ValueError(f"cannot import the callable {name!r}: {error}") from None
    if not callable(found):
        raise ValueError(f"{name!r} is not callable")
    return name


@dataclass(frozen=True)
class Schedule:
    """What a recurring job runs, and when.

    ``func`` is a dotted name (``'package.module:function'``) or a
    module-level callable (stored as its dotted name).  ``job_factory``,
    when given, makes the job of a slot instead of ``Job(func, *args,
    **kwargs)``: it is called as ``job_factory(schedule, slot)`` and must be
    picklable and comparable (the Plone integration's runs the job in a
    site as a user).
    """

    name: str
    func: str
    trigger: Cron | Interval
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    queue: str = ""
    quota_names: tuple = ()
    retry_policy: str | None = None
    misfire: str = ONCE
    misfire_grace: timedelta = MISFIRE_GRACE
    enabled: bool = True
    job_factory: object = None

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"a schedule needs a non-empty name, not {self.name!r}")
        object.__setattr__(self, "func", dotted_name(self.func))
        if not isinstance(self.trigger, (Cron, Interval)):
            raise TypeError(f"trigger must be a Cron or an Interval, not {self.trigger!r}")
        object.__setattr__(self, "args", tuple(self.args))
        object.__setattr__(self, "kwargs", dict(self.kwargs))
        if isinstance(self.quota_names, str):
            object.__setattr__(self, "quota_names", (self.quota_names,))
        object.__setattr__(self, "quota_names", tuple(self.quota_names))
        if self.retry_policy is not None:
            retry.check_factory(self.retry_policy)
        if self.misfire not in MISFIRE_POLICIES:
            raise ValueError(f"misfire must be one of {MISFIRE_POLICIES}, not {self.misfire!r}")
        if not isinstance(self.misfire_grace, timedelta) or self.misfire_grace < timedelta(0):
            raise ValueError(f"misfire_grace must be a timedelta >= 0, not {self.misfire_grace!r}")
        if self.job_factory is not None and not callable(self.job_factory):
            raise TypeError(f"job_factory must be callable, not {self.job_factory!r}")

    def make_job(self, slot):
        """The job for ``slot`` (an aware datetime)."""
        if self.job_factory is not None:
            return self.job_factory(self, slot)
        return Job(pkgutil.resolve_name(self.func), *self.args, **self.kwargs)


class ScheduleRecord(Persistent):
    """A schedule in the database, with its state.

    ``last_slot`` is the slot key of exactly-once: the latest slot queued
    (or skipped), an aware UTC datetime; ``None`` until the first.  Slots
    after ``since`` (the installation, the last resume, the last change of
    trigger) count before the first.  ``runs`` maps the microseconds of a
    slot (or of a "run now") to ``(job, note)``; ``job`` is ``None`` when
    the job could not be made, and the note says why.
    """

    def __init__(self, schedule, now):
        self.schedule = schedule
        self.paused = False
        self.since = now
        self.last_slot = None
        self.runs = LOBTree()

    @property
    def name(self):
        return self.schedule.name

    @property
    def active(self):
        return self.schedule.enabled and not self.paused

    def redeclare(self, schedule, now):
        """Replace the declaration; a new trigger, or a schedule enabled
        again, counts slots from ``now``: the slots of a disabled schedule
        are dropped, as those of a pause are."""
        enabled_again = schedule.enabled and not self.schedule.enabled
        if enabled_again or schedule.trigger != self.schedule.trigger:
            self.since, self.last_slot = now, None
        self.schedule = schedule

    def pause(self):
        self.paused = True

    def resume(self, now):
        """Resume; the slots of the pause are dropped, not misfired."""
        if self.paused:
            self.paused = False
            self.since, self.last_slot = now, None

    def next_slot(self):
        """The first slot not queued yet (``None``: the trigger has no more)."""
        anchor = self.last_slot if self.last_slot is not None else self.since
        return self.schedule.trigger.next_after(anchor)

    def last_runs(self, count=RUNS_KEPT):
        """``(slot, job, note)`` of the latest runs, newest first."""
        found = []
        for key in reversed(self.runs.keys()):
            if len(found) == count:
                break
            job, note = self.runs[key]
            found.append((_from_microseconds(key), job, note))
        return found

    def plan(self, now):
        """``[(slot, note)]`` of the jobs to queue at ``now``, and the slot
        to record as the last one (``None``: nothing is due)."""
        schedule, trigger = self.schedule, self.schedule.trigger
        first = self.next_slot()
        if first is None or first > now:
            return [], None
        grace = max(schedule.misfire_grace, MIN_MISFIRE_GRACE)
        missed = now - first > grace
        latest = trigger.latest_until(now)
        if missed and schedule.misfire == ONCE:
            note = "late" if first == latest else f"once for the missed slots since {first}"
            return [(latest, note)], latest
        if missed and schedule.misfire == SKIP:
            events.warning("schedule %r: skipping the missed slots from %s", self.name, first)
            first = trigger.next_after(now - grace)
            if first is None or first > now:
                return [], latest
        slots = []
        slot = first
        while slot is not None and slot <= now and len(slots) < MAX_CATCH_UP:
            late = now - slot > grace
            slots.append((slot, "caught up" if late else "on time"))
            slot = trigger.next_after(slot)
        return slots, slots[-1][0]

    def queue_due(self, queues, now):
        """Queue the jobs of the due slots in ``queues`` (this transaction);
        return how many were queued."""
        slots, last = self.plan(now)
        if last is None:
            return 0
        queued = 0
        for slot, note in slots:
            try:
                job = self._put(queues, slot)
            except ConflictError:
                raise
            except Exception as error:
                # Recorded, not retried: a broken declaration must not be
                # retried by every worker at every slot's timer.
                events.critical("schedule %r: cannot queue the job of slot %s",
                                self.name, slot, exc_info=True)
                self._record(slot, None, _not_queued(error))
                continue
            self._record(slot, job, note)
            queued += 1
        # The slot key: the write two racing workers conflict on.
        self.last_slot = last
        return queued

    def failed(self, now, error):
        """Record and log that the due slots could not be queued at ``now``
        (``error``), unless that is the latest run already: every worker
        fails so at every poll until the declaration changes."""
        note = _not_queued(error)
        if self.runs and self.runs[self.runs.maxKey()][1] == note:
            return
        events.critical("schedule %r: cannot queue its due slots", self.name, exc_info=error)
        self._record(now, None, note)

    def run_now(self, queues, now, note="run now", job=None):
        """Queue a job now, outside the slots (``job``: one made already
        by :meth:`Schedule.make_job`); return it."""
        job = self._put(queues, now, job)
        self._record(now, job, note)
        return job

    def _put(self, queues, slot, job=None):
        schedule = self.schedule
        try:
            queue = queues[schedule.queue]
        except KeyError:
            raise LookupError(f"no queue {schedule.queue!r}") from None
        if job is None:
            job = schedule.make_job(slot)
        return queue.put(job, begin_after=slot, quota_names=schedule.quota_names,
                         retry_policy_factory=schedule.retry_policy)

    def _record(self, slot, job, note):
        key = to_microseconds(slot)
        while key in self.runs:  # a "run now" in the same microsecond as a slot
            key += 1
        self.runs[key] = (job, note)
        while len(self.runs) > RUNS_KEPT:
            del self.runs[self.runs.minKey()]

    def __repr__(self):
        state = "paused" if self.paused else "enabled" if self.schedule.enabled else "disabled"
        return f"<ScheduleRecord {self.name!r} {self.schedule.trigger} {state}>"


def _from_microseconds(value):
    return EPOCH + timedelta(microseconds=value)


def _not_queued(error):
    return f"not queued: {type(error).__name__}: {error}"


class Schedules(Container):
    """Schedule records by name."""

    def install(self, schedule, now=None):
        """Add ``schedule``, or replace the declaration of the record of
        that name if it differs (keeping its state); return the record."""
        if not isinstance(schedule, Schedule):
            raise TypeError(f"{schedule!r} is not a Schedule")
        now = now or utcnow()
        record = self._items.get(schedule.name)
        if record is None:
            record = self._items[schedule.name] = ScheduleRecord(schedule, now)
            events.info("installed schedule %r (%s)", schedule.name, schedule.trigger)
        elif record.schedule != schedule:
            record.redeclare(schedule, now)
            events.info("schedule %r redeclared (%s)", schedule.name, schedule.trigger)
        return record

    def remove(self, name):
        """Remove the schedule ``name`` (its queued jobs stay queued)."""
        del self._items[name]

    def rename(self, name, schedule):
        """Give the record of the schedule ``name`` the declaration
        ``schedule``, under that one's name, keeping its state (slots
        queued, pause, runs); return the record.  ``KeyError`` if there is
        no schedule ``name``, ``ValueError`` if another holds the new name."""
        record = self._items[name]
        if schedule.name != name and schedule.name in self._items:
            raise ValueError(f"a schedule {schedule.name!r} exists already")
        del self._items[name]
        record.schedule = schedule
        self._items[schedule.name] = record
        events.info("schedule %r renamed %r", name, schedule.name)
        return record


def _home(connection):
    """The connection to the database that holds the queues."""
    queues = connection.root().get(QUEUES_KEY)
    if queues is None:
        raise LookupError("no queues in this database; call configure.install_queues(db) "
                          "or start a worker first")
    return queues, queues._p_jar


def find(connection):
    """The :class:`Schedules` of the database of ``connection``, or ``None``."""
    queues = connection.root().get(QUEUES_KEY)
    if queues is None:
        return None
    return queues._p_jar.root().get(KEY)


def install(connection, schedule, now=None):
    """Store ``schedule`` (see :meth:`Schedules.install`) in the current
    transaction of ``connection``, creating the container where missing;
    return its record."""
    _, home = _home(connection)
    schedules = home.root().get(KEY)
    if schedules is None:
        schedules = home.root()[KEY] = Schedules()
    return schedules.install(schedule, now)


def get_record(connection, name):
    """The record of the schedule ``name``; ``LookupError`` if none."""
    schedules = find(connection)
    if schedules is None or name not in schedules:
        raise LookupError(f"no schedule {name!r}")
    return schedules[name]


def queue_due_slots(connection, now=None):
    """Queue the jobs of every due slot of the active schedules, in the
    current transaction of ``connection`` (commit it: see the module
    documentation); return the earliest next slot, or ``None``.  A record
    that fails is recorded as such (:meth:`ScheduleRecord.failed`) and the
    others go on."""
    schedules = find(connection)
    if schedules is None:
        return None
    queues, _ = _home(connection)
    now = now or utcnow()
    upcoming = []
    for record in schedules.values():
        if not record.active:
            continue
        try:
            if record.queue_due(queues, now):
                trace.debug("schedule %r: queued the job(s) up to slot %s", record.name,
                            record.last_slot)
            following = record.next_slot()
        except ConflictError:
            raise
        except Exception as error:
            # queue_due computes the slots (plan) before it writes: a record
            # whose trigger fails has queued nothing.
            record.failed(now, error)
            continue
        if following is not None:
            upcoming.append(following)
    return min(upcoming, default=None)
