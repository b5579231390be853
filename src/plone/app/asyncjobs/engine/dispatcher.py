"""The dispatcher: one per worker process, in memory.

A dispatcher is identified by its UUID (see :mod:`.instanceuuid`).  On a
reactor it polls the database every ``poll_interval`` seconds.  Each poll,
for every queue:

* registers and activates the dispatcher's record the first time (jobs
  left from a crashed earlier life of this UUID are handed back first),
  and installs the configured agents that are missing;
* pings, which also deactivates a dead sibling (see :mod:`.dispatchers`);
* sizes each agent's worker threads to the agent's ``size`` and wakes
  them if jobs are due.

Worker threads claim and run jobs themselves (see :mod:`.workers`), so a
busy worker never waits for a poll.  :meth:`Dispatcher.wake` triggers a
poll at once from any thread.

Idle threads do not wait for a poll either.  The dispatcher listens to its
database's wake-up channel (see :mod:`.wakeup`) for the doorbells of the
queues' lanes.  The lanes of a queue are shared out between its active
dispatchers (see :meth:`next_lane`): when a transaction queues a job in
one of its own lanes, a dispatcher wakes one thread of each agent of that
queue at once; a job in another's lane it answers for only if the job is
still pending :data:`BACKUP_DELAY` seconds later, so that one job does not
make every worker race for it.  A job queued for later rings its queue's
schedule doorbell instead, which wakes no thread: the dispatcher looks at
its queues at once and sets its due timer, which wakes threads when the
next job queued for later becomes due.  The poll stays as the safety net,
for rings that get lost.

The dispatcher keeps, in memory only, the recent polls and jobs for
monitoring (:meth:`status_info`, :meth:`job_info`, :meth:`iter_polls`,
:meth:`statistics_info`).
"""
import collections
import itertools
import os
import random
import socket
import threading
from datetime import timedelta
from pathlib import Path

import transaction
from twisted.internet import threads

from plone.app.asyncjobs.engine import failure as failures
from plone.app.asyncjobs.engine import pickups
from plone.app.asyncjobs.engine import wakeup
from plone.app.asyncjobs.engine.agent import Agent
from plone.app.asyncjobs.engine.clock import to_microseconds
from plone.app.asyncjobs.engine.clock import utcnow
from plone.app.asyncjobs.engine.connectivity import Connectivity
from plone.app.asyncjobs.engine.counters import Counters
from plone.app.asyncjobs.engine.dispatchers import DispatcherAgents
from plone.app.asyncjobs.engine.exceptions import CancelledError
from plone.app.asyncjobs.engine.exceptions import DispatcherError
from plone.app.asyncjobs.engine.exceptions import JobTimeoutError
from plone.app.asyncjobs.engine.exclusions import ClaimExclusions
from plone.app.asyncjobs.engine.ids import object_id
from plone.app.asyncjobs.engine.instanceuuid import get_uuid
from plone.app.asyncjobs.engine.jobmetrics import JobMetrics
from plone.app.asyncjobs.engine.log import events
from plone.app.asyncjobs.engine.log import trace
from plone.app.asyncjobs.engine.naming import job_name
from plone.app.asyncjobs.engine.queue import KEY
from plone.app.asyncjobs.engine.queue import LANES
from plone.app.asyncjobs.engine.slottimer import SlotTimer
from plone.app.asyncjobs.engine.timeouts import TimeLimits
from plone.app.asyncjobs.engine.timeouts import check_timeout
from plone.app.asyncjobs.engine.timeouts import time_limit
from plone.app.asyncjobs.engine.transactions import abort
from plone.app.asyncjobs.engine.transactions import retry_conflicts
from plone.app.asyncjobs.engine.workers import AgentWorkers


STOPPED, STARTING, RUNNING, STUCK = "STOPPED", "STARTING", "RUNNING", "STUCK"
RESULT_LIMIT = 10_000

_dispatchers = {}
_registry_lock = threading.Lock()
# The pool size of a database is shared by the dispatchers of a process.
_pool_size_lock = threading.Lock()


#: A poll sweeps completed jobs into the history once they are this old
#: and their worker thread has not done it.
LEFTOVER_AGE = timedelta(seconds=5)

#: The default seconds between two polls.  Jobs are started by push (see
#: the module documentation); the poll is the safety net for lost rings,
#: pings the dispatcher's records (which must happen well within their
#: ``ping_death_interval``, 60 s by default) and sweeps leftovers.
POLL_INTERVAL = 10

#: Seconds a dispatcher leaves a due job in another dispatcher's lane to
#: that dispatcher before waking its own threads for it: longer than a
#: claim takes even on a loaded machine, or both would claim the job.
BACKUP_DELAY = 1.0

#: Seconds a dispatcher waits, after waking a thread for a ring or a timer,
#: before it looks at its queues for the timers of jobs due later: the look
#: would compete for the processor with the claim it just woke (it took
#: most of the pickup latency's spread over ZEO), and the rings arriving
#: meanwhile share it.
LOOK_DELAY = 0.01

#: With push, an idle worker thread that no ring, timer or poll woke
#: claims on its own after this many poll intervals (without push, after
#: one).  The dispatcher wakes threads whenever a job is due, the poll
#: included, so such a claim is a last resort: at one poll interval the
#: idle threads made about 2,000 empty claims an hour.
IDLE_POLLS = 6

#: Seconds the due timer fires after a job's due time, so that the
#: claim's clock has passed it.
TIMER_SLACK = 0.001


def get(uuid=None, default=None):
    """Return the active dispatcher of this process with ``uuid``
    (default: this process's UUID), or ``default``."""
    return _dispatchers.get(uuid or get_uuid(), default)


def active_dispatchers():
    """The active dispatchers of this process, by UUID (a copy)."""
    with _registry_lock:
        return dict(_dispatchers)


def process_identity():
    """``(hostname, pid)`` of this process, as stored in dispatcher records."""
    return (socket.gethostname(), os.getpid())


def process_alive(pid):
    """Tell whether process ``pid`` exists on this host; a zombie counts as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True  # no /proc to ask: kill() found the process
    return state != "Z"


def _describe(describe, value, **options):
    try:
        return describe(value, **options)
    except Exception as error:
        return f"<cannot be described: {type(error).__name__}: {error}>"


#: Stands for a lane in rings that tell of changed dispatcher records.
_SIBLINGS = object()
# The "lane" a queue's schedule doorbell stands for: jobs queued for later.
_SCHEDULED = object()
#: Stands for a lane in rings that tell of queues added or deleted.
_QUEUES = object()
_MARKERS = (_SIBLINGS, _SCHEDULED, _QUEUES)


class PollInfo(dict):
    """What one poll saw: ``{queue name: None | {agent name: details}}``."""

    def __init__(self, key, utc_timestamp, details):
        super().__init__(details)
        self.key = key
        self.utc_timestamp = utc_timestamp


#: The longest poll interval, shutdown grace or ping setting, in seconds:
#: longer ones overflow timers and datetimes.
MAX_SECONDS = 86_400


def _check_seconds(value, name, zero=False):
    """``value`` if it is ``None`` or a finite number of seconds up to
    :data:`MAX_SECONDS`, positive (``zero``: or 0); else raise."""
    check_timeout(value, name, zero)
    if value is not None and value > MAX_SECONDS:
        raise ValueError(f"{name} must be at most {MAX_SECONDS} seconds, not {value!r}")
    return value


class Dispatcher:
    """Polls the database, keeps worker threads running, records statistics.

    ``agents`` maps agent names to factories (called without arguments) of
    the agents installed in every queue on activation when missing; the
    default is one agent ``'main'`` of size 3.  ``ping_interval`` and
    ``ping_death_interval`` (seconds), when given, are stored in this
    dispatcher's records on activation (the defaults are 30 and 60).
    With ``push`` false the dispatcher does not listen for queued jobs:
    idle threads find them by polling only.
    """

    def __init__(self, db, reactor, poll_interval=POLL_INTERVAL, uuid=None, agents=None,
                 jobs_size=200, polls_size=400, shutdown_grace=10,
                 ping_interval=None, ping_death_interval=None, push=True):
        _check_seconds(poll_interval, "poll_interval")
        _check_seconds(shutdown_grace, "shutdown_grace", zero=True)
        for name, size in (("jobs_size", jobs_size), ("polls_size", polls_size)):
            # The records of recent jobs and polls: with none, the
            # dispatcher would always look stuck.
            if not isinstance(size, int) or isinstance(size, bool) or size < 1:
                raise ValueError(f"{name} must be a positive integer, not {size!r}")
        ping = _check_seconds(ping_interval, "ping_interval")
        death = _check_seconds(ping_death_interval, "ping_death_interval")
        ping = DispatcherAgents.ping_interval if ping is None else timedelta(seconds=ping)
        death = (DispatcherAgents.ping_death_interval if death is None
                 else timedelta(seconds=death))
        if death < 2 * ping:
            # Pings are written every ping_interval: a live dispatcher would
            # be found dead between two, and its jobs run twice.
            raise ValueError(f"ping_death_interval ({death.total_seconds()} s) must be at "
                             f"least twice ping_interval ({ping.total_seconds()} s)")
        self.db = db
        self.reactor = reactor
        self.poll_interval = poll_interval
        self.uuid = uuid or get_uuid()
        self.agents = agents if agents is not None else {"main": Agent}
        self.shutdown_grace = shutdown_grace
        self.ping_settings = {
            name: timedelta(seconds=value)
            for name, value in (("ping_interval", ping_interval),
                                ("ping_death_interval", ping_death_interval))
            if value is not None
        }
        self.activated = None
        self.polls = collections.deque(maxlen=polls_size)
        self.jobs = collections.OrderedDict()
        self._jobs_size = jobs_size
        self._poll_keys = itertools.count(1)
        self._pools = {}
        self._active_queues = set()
        self._connection = None
        self._next_poll = None
        self._lock = threading.Lock()
        self.statistics = Counters()
        #: The jobs run here by queue and callable, for Prometheus (see
        #: :mod:`.jobmetrics` and :mod:`.metrics`).
        self.metrics = JobMetrics(str(self.uuid))
        #: Since when this dispatcher could watch its siblings' pings.
        self.connectivity = Connectivity(late=2 * timedelta(seconds=poll_interval))
        #: Per (queue, agent), the held jobs no thread had in hand at the
        #: previous poll (see AgentWorkers.recover_strays).
        self._strays = collections.defaultdict(dict)
        #: Per queue, until when no sibling can have found this dispatcher
        #: dead: its last committed ping plus its death interval (see
        #: :meth:`lease_lapsed`); and those of the poll being committed.
        self._leases = {}
        self._polled_leases = {}
        #: Jobs (oid, database) this process failed to claim for a reason
        #: other than a conflict: it skips them for a while.
        self.unclaimable = ClaimExclusions()
        self._lanes = itertools.count(random.randrange(1 << 16))
        #: Per queue name, the lanes this process claims from first.
        self._own_lanes = {}
        self.push = push
        #: How recent jobs were picked up (see :mod:`.pickups`).
        self.pickups = pickups.Pickups()
        self._listener = None
        #: ``(queue name, lane)`` by the oids of the queues' doorbells,
        #: learnt by :meth:`_look`.
        self._doorbells = {}
        #: What rang since the last answer: ``(queue name, lane)`` pairs,
        #: or ``None`` for anything.
        self._rung = set()
        self._ring_pending = False
        self._due_timer = None
        self._next_look = None
        #: How the pending delayed look wakes threads (see :meth:`_look_soon`).
        self._look_later_how = None
        #: Queues the slots of recurring jobs (see :mod:`.schedules`).
        self._slots = None
        #: Enforces the time limits of running jobs (see :mod:`.timeouts`).
        self.time_limits = TimeLimits(self)

    # -- life cycle -----------------------------------------------------------

    def activate(self):
        """Start polling once the reactor runs."""
        with _registry_lock:
            if self.activated:
                raise DispatcherError(f"dispatcher {self.uuid} is active already")
            if self.uuid in _dispatchers:
                raise DispatcherError(f"another dispatcher with UUID {self.uuid} runs here")
            _dispatchers[self.uuid] = self
        self.activated = utcnow()
        self.polls.clear()
        self.jobs.clear()
        self._connection = self.db.open(transaction_manager=transaction.TransactionManager())
        self._slots = SlotTimer(self._connection, self.reactor, f"dispatcher {self.uuid}")
        channel = wakeup.channel_for(self.db) if self.push else None
        if channel is not None:
            self._listener = channel.listen(self._ring)
        events.info("dispatcher %s activating (poll interval %ss, %s)", self.uuid,
                    self.poll_interval, "push: " + type(channel).__name__
                    if channel is not None else "no push")
        self.reactor.callWhenRunning(self._poll_and_reschedule)
        self.reactor.addSystemEventTrigger("before", "shutdown", self.deactivate)

    def idle_wait(self):
        """Seconds an idle worker thread waits for a wake before it claims
        anyway (see :data:`IDLE_POLLS`)."""
        return self.poll_interval * (IDLE_POLLS if self._listener is not None else 1)

    def wake(self):
        """Poll as soon as possible; safe to call from any thread."""
        if self.activated:
            self.reactor.callFromThread(self._poll_and_reschedule)

    def _poll_and_reschedule(self):
        if not self.activated:
            return
        if self._next_poll is not None and self._next_poll.active():
            self._next_poll.cancel()
        try:
            try:
                self.poll()
            except Exception:
                self.connectivity.broken()
                events.critical("dispatcher %s: poll failed", self.uuid, exc_info=True)
            # Again once the poll committed: threads started by it may have
            # claimed before their agent was stored.
            self._look(pickups.POLL)
            # Recurring jobs: the due slots, and a timer for the next one.
            self._slots.queue_due()
        finally:
            # Whatever failed, the next poll comes: it is the safety net of
            # every other way of finding work, and the source of pings.
            if self.activated:
                self._next_poll = self.reactor.callLater(
                    self.poll_interval, self._poll_and_reschedule)

    # -- push -----------------------------------------------------------------

    def _ring(self, oids):
        """Called by the wake-up channel, in any thread: a transaction
        changed ``oids`` (``None``: anything may have changed).  Returns
        whether it rang the doorbell of a lane this dispatcher claims from:
        then a thread of this process will soon read what the transaction
        stored."""
        doorbells = self._doorbells
        rung = None if oids is None else {doorbells[oid] for oid in oids if oid in doorbells}
        if rung == set():
            return False
        with self._lock:
            if rung is None or self._rung is None:
                self._rung = None
            else:
                self._rung |= rung
            pending, self._ring_pending = self._ring_pending, True
        if not pending:  # else the answer to come sees this commit too
            self.reactor.callFromThread(self._answer_ring)
        return rung is not None and any(self._claims_at_ring(name, lane) for name, lane in rung)

    def _claims_at_ring(self, queue_name, lane):
        """Whether a ring of ``lane`` (a lane number, ``None``, or a marker)
        of ``queue_name`` has a thread of this dispatcher claim at once: a
        lane of its own rang, not a marker's doorbell (the schedule's, the
        siblings' or the queues')."""
        return lane not in _MARKERS and self._owns_lane(queue_name, lane)

    def _answer_ring(self):
        with self._lock:
            self._ring_pending = False
            rung, self._rung = self._rung, set()
        if self._listener is None:
            return  # deactivated meanwhile
        self._listener.settle()
        self.statistics.add("rings")
        if rung is not None and any(lane is _QUEUES for _, lane in rung):
            # A queue was added: a poll sets this dispatcher up in it.
            self._poll_and_reschedule()
            return
        if rung is None or any(lane is _SIBLINGS for _, lane in rung):
            # Anything, or the queue's dispatchers changed: lanes may have
            # been shared out anew.  A job found then was not rung for by
            # its put, unless the channel may have missed rings: for the
            # pickup figures, it is found by looking, as a poll finds it
            # (the ping of every poll changes a dispatcher record).
            self._look(pickups.PUSH if rung is None else pickups.POLL)
            return
        scheduled = any(lane is _SCHEDULED for _, lane in rung)
        due_now = {name: lane for name, lane in rung if self._claims_at_ring(name, lane)}
        if scheduled and not due_now:
            # No claim of this process to make way for: set the timer at
            # once (or wake threads, if the job is due already).
            self._look(pickups.TIMER)
            return
        # Wake first (the job is most likely due now), then, once the claim
        # is under way, look for the timers: a job in another's lane, or
        # one queued for later (which may be due by then).
        self._wake(due_now, pickups.PUSH)
        self._look_soon(pickups.TIMER if scheduled else None)

    def _answer_timer(self, queue_name, lane):
        """The due timer: a job of ``queue_name`` in lane ``lane`` is due now.
        Wake first, as for a ring: looking at the queues takes longer than
        the claim."""
        self._due_timer = None
        self._wake({queue_name: lane}, pickups.TIMER)
        self._look_soon()

    def _look_soon(self, how=None):
        """Look at the queues :data:`LOOK_DELAY` seconds from now, once for
        every ring and timer answered until then; the look wakes threads
        for due jobs (with ``how``) if one of the calls passed a ``how``."""
        if how is not None:
            self._look_later_how = how
        if self._next_look is None or not self._next_look.active():
            self._next_look = self.reactor.callLater(LOOK_DELAY, self._look_later)

    def _look_later(self):
        how, self._look_later_how = self._look_later_how, None
        self._look(how)

    def _wake(self, lanes, how):
        """Wake one thread of every pool of the queues named in ``lanes``, a
        mapping to the number of a lane with a job due, or ``None``."""
        for (queue_name, _), pool in list(self._pools.items()):
            if queue_name in lanes:
                pool.wake(how, threads=1, lane=lanes[queue_name])

    def _owns_lane(self, queue_name, lane):
        own = self._own_lanes.get(queue_name)
        return own is None or (0 if lane is None else lane) in own

    def _look(self, how):
        """Wake one thread of every pool whose queue has a job due for this
        dispatcher (``how`` says why, see :mod:`.pickups`; ``None`` wakes
        nobody); learn the doorbells; set the timer for the next job due.

        Runs in the reactor thread.  A job in another dispatcher's lane is
        due here :data:`BACKUP_DELAY` seconds after its due time.
        """
        if not self.activated:
            return
        manager = self._connection.transaction_manager
        now = to_microseconds(utcnow())
        backup = int(BACKUP_DELAY * 1_000_000)
        doorbells, due_queues, next_due, next_head = {}, set(), None, None
        try:
            manager.begin()
            queues = self._connection.root().get(KEY)
            if queues is not None and queues.doorbell is not None:
                doorbells[queues.doorbell._p_oid] = (None, _QUEUES)
            for name, queue in (queues.items() if queues is not None else ()):
                for lane, doorbell in enumerate(queue.doorbells or ()):
                    doorbells[doorbell._p_oid] = (name, None if lane == LANES else lane)
                if queue.schedule_doorbell is not None:
                    doorbells[queue.schedule_doorbell._p_oid] = (name, _SCHEDULED)
                # A sibling activating or stopping changes these.
                for record in (queue.dispatchers._items, *queue.dispatchers.values()):
                    doorbells[record._p_oid] = (name, _SIBLINGS)
                self._share_lanes(name, queue)
                for lane, due in queue.lane_heads():
                    if not self._owns_lane(name, lane):
                        due += backup
                    if due <= now:
                        due_queues.add(name)
                    elif next_due is None or due < next_due:
                        next_due, next_head = due, (name, queue, lane)
            if next_head is not None:
                # So that the claim at the due time finds them in the cache.
                next_head[1].prefetch_head(next_head[2])
        except Exception:
            events.error("dispatcher %s could not look at its queues; the next "
                         "poll will", self.uuid, exc_info=True)
            return
        finally:
            # With the storage away the abort fails too; that must not
            # escape into the reactor (it would end the poll loop).
            abort(manager)
        self._doorbells = doorbells
        if how is not None:
            self._wake(dict.fromkeys(due_queues), how)
        if self._due_timer is not None and self._due_timer.active():
            self._due_timer.cancel()
        self._due_timer = None
        if next_due is not None:
            # From now: looking took time.
            delay = max(0, next_due - to_microseconds(utcnow())) / 1_000_000 + TIMER_SLACK
            self._due_timer = self.reactor.callLater(
                delay, self._answer_timer, next_head[0], next_head[2])

    def deactivate(self):
        """Stop: let running jobs finish (up to ``shutdown_grace`` seconds),
        then deactivate in every queue, handing back what is still held.

        Runs in the reactor thread (it is a shutdown trigger); see
        :meth:`stop` for other threads.
        """
        if not self.activated:
            return
        self.activated = None
        for call in (self._next_poll, self._due_timer, self._next_look):
            if call is not None and call.active():
                call.cancel()
        self.time_limits.stop()
        self._slots.stop()
        if self._listener is not None:
            self._listener.stop()
            self._listener = None
        for pool in self._pools.values():
            pool.set_size(0)
        still_running = []
        for pool in self._pools.values():
            still_running += pool.join(self.shutdown_grace)
        if still_running:
            events.warning(
                "dispatcher %s: %d worker thread(s) still running after %ss; "
                "handing back the jobs they hold",
                self.uuid, len(still_running), self.shutdown_grace,
            )
            interrupted = sum(pool.abandon_running() for pool in self._pools.values())
            if interrupted:
                self.statistics.add("abandoned threads interrupted", interrupted)
        manager = self._connection.transaction_manager

        def deactivate_records():
            for name in self._active_queues:
                queue = self._connection.root()[KEY].get(name)
                record = queue.dispatchers.get(self.uuid) if queue is not None else None
                if record is not None and record.activated:
                    record.deactivate()

        try:
            retry_conflicts(deactivate_records, manager, f"deactivating dispatcher {self.uuid}")
        except Exception:
            events.critical(
                "dispatcher %s could not deactivate; a sibling will recover its jobs",
                self.uuid, exc_info=True,
            )
        self._connection.close()
        self._connection = None
        self._active_queues.clear()
        with _registry_lock:
            if _dispatchers.get(self.uuid) is self:
                del _dispatchers[self.uuid]
        self.activated = False
        events.info("dispatcher %s deactivated", self.uuid)

    def stop(self):
        """Deactivate from any thread other than the reactor's; wait for it."""
        if not self.activated:
            return
        if self.reactor.running:
            threads.blockingCallFromThread(self.reactor, self.deactivate)
        else:
            self.deactivate()

    # -- polling --------------------------------------------------------------

    def poll(self):
        """Do one poll (see the module documentation); return its PollInfo."""
        manager = self._connection.transaction_manager
        details = retry_conflicts(self._poll_queues, manager, f"poll of {self.uuid}")
        self._leases.update(self._polled_leases)
        info = PollInfo(next(self._poll_keys), utcnow(), details)
        if not self.polls or dict(self.polls[-1]) != dict(info):
            trace.debug("dispatcher %s poll: %r", self.uuid, dict(info))
        self.polls.append(info)
        return info

    def _poll_queues(self):
        queues = self._connection.root().get(KEY)
        details = {}
        wanted = set()
        connected_since = self.connectivity.poll_starts(utcnow())
        self._polled_leases = {}
        if queues is None:
            return details
        queues.install_doorbell()
        for name, queue in queues.items():
            record = self._activate_in(name, queue)
            if record is None:
                details[name] = None
                continue
            self._install_agents(name, record)
            queue.install_doorbells()
            sibling = queue.dispatchers.ping(self.uuid, connected_since)
            self._polled_leases[name] = record.last_ping + record.ping_death_interval
            if record._p_changed:
                # The ping is written: the pickups go with it, for the control
                # panel, without a commit of their own.
                record.pickups = self.pickups.summary(utcnow())
            self._share_lanes(name, queue)
            if sibling is not None:
                self.statistics.add("siblings deactivated")
            due = queue.has_due_jobs()
            agents = details[name] = {}
            # Worker threads sweep what they finish with their next claim,
            # which can take a while under load; sweeping the same job from
            # here too would make that claim conflict.
            leftovers = utcnow() - max(2 * timedelta(seconds=self.poll_interval),
                                       LEFTOVER_AGE)
            for agent_name, agent in record.items():
                pool = self._pool(name, agent_name)
                agent.sweep(completed_before=leftovers, skip=pool.in_hand())
                wanted.add((name, agent_name))
                pool.set_size(0 if record.paused else agent.size)
                pool.stop_superseded(agent)
                if pool.recover_strays(agent, self._strays[name, agent_name]):
                    self.statistics.add("stranded jobs recovered")
                    due = True
                if due:
                    pool.wake()
                agents[agent_name] = {
                    "size": agent.size,
                    "len": len(agent),
                    "active jobs": self.active_job_ids(name, agent_name),
                    "paused": record.paused,
                }
        for key, pool in self._pools.items():
            if key not in wanted:
                pool.set_size(0)
        return details

    def _activate_in(self, name, queue):
        record = queue.dispatchers.get(self.uuid)
        if record is None:
            record = queue.dispatchers.register(self.uuid)
        if record.activated and record.process == process_identity():
            self._active_queues.add(name)  # this process activated it
            return record
        if name in self._active_queues:
            return record  # found deactivated by a sibling: the ping reactivates it
        if record.activated:
            if record.dead or self._earlier_life(record):
                events.warning(
                    "dispatcher %s: recovering the jobs of its earlier life in queue %r",
                    self.uuid, name,
                )
                record.deactivate()
            else:
                events.error(
                    "dispatcher %s is already active in queue %r, in process %s; "
                    "is another process using the same UUID file? Waiting until "
                    "that record is dead.", self.uuid, name, record.process,
                )
                return None
        for setting, value in self.ping_settings.items():
            setattr(record, setting, value)
        record.activate(process=process_identity())
        self._active_queues.add(name)
        return record

    def _install_agents(self, name, record):
        """Add the configured agents missing from ``record`` (every poll, so a
        queue created or replaced while this dispatcher runs gets them too)."""
        for agent_name, factory in self.agents.items():
            if agent_name not in record:
                record[agent_name] = factory()
                events.info("dispatcher %s: added agent %r to queue %r",
                            self.uuid, agent_name, name)

    @staticmethod
    def _earlier_life(record):
        """A record activated by a process of this host that no longer exists."""
        if record.process is None:
            return False
        host, pid = record.process
        return host == socket.gethostname() and pid != os.getpid() and not process_alive(pid)

    def _pool(self, queue_name, agent_name):
        key = (queue_name, agent_name)
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools[key] = AgentWorkers(self, queue_name, agent_name)
        return pool

    def reserve_connections(self, count):
        """Make room in the database's connection pool for ``count`` more
        connections (fewer, if negative): each worker thread holds one."""
        if count:  # every poll sets the size of every pool
            with _pool_size_lock:
                self.db.setPoolSize(self.db.getPoolSize() + count)

    def lease_lapsed(self, queue_name):
        """Whether a sibling may have found this dispatcher dead in queue
        ``queue_name`` by now: its last ping there that a poll committed is
        older than its death interval (say, the process was paused, or cut
        off from the database).  Its jobs there may then run elsewhere, so
        its worker threads stop theirs (see :meth:`.workers.WorkerThread.lapsed`)
        without waiting to hear it from the database.  Judged by this
        machine's clock, as siblings judge deaths by theirs."""
        lease = self._leases.get(queue_name)
        return lease is not None and lease < utcnow()

    def next_lane(self, queue_name=""):
        """Where the next claim starts looking (thread-safe).

        Concurrent claims of this process look in different lanes; and the
        active dispatchers of a queue share its lanes out between them
        (see :meth:`_share_lanes`), so that claims of different processes
        rarely meet while each has work in its own lanes.
        """
        lanes = self._own_lanes.get(queue_name) or range(LANES)
        return lanes[next(self._lanes) % len(lanes)]

    def _share_lanes(self, name, queue):
        """Take every n-th lane of ``queue``, n being its active dispatchers."""
        active = sorted(str(uuid) for uuid, record in queue.dispatchers.items()
                        if record.activated and not record.dead)
        mine = str(self.uuid)
        if mine not in active or len(active) > LANES:
            self._own_lanes.pop(name, None)
            return
        self._own_lanes[name] = range(active.index(mine), LANES, len(active))

    # -- statistics (called from worker threads) ----------------------------

    def job_started(self, job, pool, thread_name, pickup=None):
        """Record that ``thread_name`` of ``pool`` starts ``job``, picked up
        as ``pickup`` says (see :mod:`.pickups`); return the record."""
        started = utcnow()
        waited = pickups.latency(started, job.begin_after,
                                 getattr(job, "_v_pending_since", None))
        self.pickups.record(started, pickup, waited)
        info = {
            "id": object_id(job),
            # The name only: the full call (with arguments) is recorded when
            # the job has run and its arguments are loaded anyway.
            "call": job_name(job),
            "queue": pool.queue_name,
            "agent": pool.agent_name,
            "thread": thread_name,
            "quota names": tuple(job.quota_names),
            "timeout": time_limit(job),
            "started": started,
            "pickup": pickup,
            "pickup latency": waited,
            # Attempts after this one that end in this thread are reruns.
            "attempt": job.attempts,
            "completed": None,
            "failed": False,
            "cancelled": False,
            "timed out": False,
            "reassigned": False,
            "result": None,
        }
        with self._lock:
            self.jobs[info["id"]] = info
            while len(self.jobs) > self._jobs_size:
                self.jobs.popitem(last=False)
        self.statistics.add("started")
        self.metrics.started(job, info)
        return info

    def job_finished(self, info, job):
        """Record the outcome of a job a worker thread ran (never raises:
        what cannot be described is recorded as such)."""
        info["completed"] = utcnow()
        info["call"] = _describe(repr, job)
        result = job.result
        if failures.is_failure(result) and result.check(CancelledError):
            # Its traceback is the cancel call's: the reason says it all.
            info["failed"] = info["cancelled"] = True
            text = _describe(failures.summary, result)
        elif failures.is_failure(result):
            info["failed"] = True
            info["timed out"] = bool(result.check(JobTimeoutError))
            text = _describe(failures.traceback_text, result, detail="brief")
        else:
            text = _describe(repr, result)
        if len(text) > RESULT_LIMIT:
            text = text[:RESULT_LIMIT] + "\n[...TRUNCATED...]"
        info["result"] = text
        self.statistics.add("failed" if info["failed"] else "completed")
        try:
            self.metrics.finished(job, info)
        except Exception:
            # It reads the job's state again, which can fail (the storage
            # away): the metrics miss this outcome, the thread goes on.
            events.warning("%s: the metrics could not count the outcome of job %s",
                           info["thread"], info["id"], exc_info=True)

    def job_abandoned(self, info, reason):
        """Record that a worker thread gave up its attempt at a job because
        of ``reason``, committing nothing: what became of the job is for
        its retry policy (or a sibling) to say."""
        info["completed"] = utcnow()
        info["failed"] = True
        info["result"] = f"attempt abandoned: {reason}"

    # -- introspection ----------------------------------------------------------

    def active_job_ids(self, queue=None, agent=None):
        """``(oid, database)`` of the jobs worker threads run right now."""
        found = []
        for (queue_name, agent_name), pool in list(self._pools.items()):
            if queue not in (None, queue_name) or agent not in (None, agent_name):
                continue
            found += [t.current_job for t in pool.alive() if t.current_job is not None]
        return found

    def job_info(self, oid, database_name=None):
        """The in-memory record of a job this process ran recently."""
        matches = [info for (o, db), info in list(self.jobs.items())
                   if o == oid and database_name in (None, db)]
        if not matches:
            raise LookupError(f"job {oid} is not among this dispatcher's recent jobs")
        if len(matches) > 1:
            raise ValueError(f"oid {oid} is ambiguous; give the database name")
        return dict(matches[0])

    def status_info(self):
        """``status`` (STOPPED, STARTING, RUNNING or STUCK), timings and UUID.

        STUCK means no poll for more than two poll intervals.  ``push``
        names the wake-up channel listened to (``None``: polling only);
        ``pickups`` summarises how the jobs of the last hour were picked
        up (see :meth:`.pickups.Pickups.summary`).
        """
        interval = timedelta(seconds=self.poll_interval)
        info = {"uuid": str(self.uuid), "poll interval": interval,
                "push": wakeup.describe(self._listener),
                "pickups": self.pickups.summary(utcnow())}
        if not self.activated:
            return dict(info, status=STOPPED, uptime=None, **{"time since last poll": None})
        now = utcnow()
        last = self.polls[-1].utc_timestamp if self.polls else None
        since = now - last if last else None
        if last is None:
            status = STARTING if now - self.activated <= 2 * interval else STUCK
        else:
            status = RUNNING if since <= 2 * interval else STUCK
        return dict(info, status=status, uptime=now - self.activated,
                    **{"time since last poll": since})

    def iter_polls(self, since=None, count=None):
        """Recent polls, newest first; ``since`` is an aware datetime."""
        polls = reversed(list(self.polls))
        if since is not None:
            polls = itertools.takewhile(lambda p: p.utc_timestamp >= since, polls)
        return itertools.islice(polls, count)

    def statistics_info(self, since=None, until=None, before=False, queue=None, agent=None):
        """Counts and extreme durations of the recent jobs (in memory).

        ``since`` and ``until`` (aware datetimes) limit the jobs to those
        started in that window (strictly before ``until`` with ``before``);
        with ``until``, outcomes known only later count as unknown.
        ``statistics start`` is the oldest start considered, ``statistics
        end`` the newest.
        """
        infos = []
        for info in list(self.jobs.values()):
            started = info["started"]
            if (since is not None and started < since
                    or until is not None and (started > until or before and started == until)
                    or queue not in (None, info["queue"]) or agent not in (None, info["agent"])):
                continue
            if until is not None and info["completed"] is not None and info["completed"] > until:
                info = dict(info, completed=None, failed=False)
            infos.append(info)
        stats = {"started": len(infos), "successful": 0, "failed": 0, "unknown": 0}
        shortest, longest = {}, {}
        for info in infos:
            if info["completed"] is None:
                stats["unknown"] += 1
                continue
            kind = "failed" if info["failed"] else "successful"
            stats[kind] += 1
            entry = (info["completed"] - info["started"], info["id"])
            if kind not in shortest or entry[0] < shortest[kind][0]:
                shortest[kind] = entry
            if kind not in longest or entry[0] > longest[kind][0]:
                longest[kind] = entry
        for kind in ("successful", "failed"):
            stats[f"shortest {kind}"] = shortest.get(kind)
            stats[f"longest {kind}"] = longest.get(kind)
        starts = [i["started"] for i in infos]
        stats["statistics start"] = min(starts, default=None)
        stats["statistics end"] = max(starts, default=None)
        return stats

    def __repr__(self):
        return f"<Dispatcher {self.uuid} {self.status_info()['status']}>"
