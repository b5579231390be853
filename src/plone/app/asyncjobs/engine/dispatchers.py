"""The database's record of the dispatchers working on a queue.

Each worker process (dispatcher) has, in every queue, a
:class:`DispatcherAgents` record: when it was activated, when it last
pinged, and its agents.  Liveness works like this:

* an active dispatcher pings every poll, but writes ``last_ping`` only once
  per ``ping_interval`` (30 s), to keep writes rare;
* a dispatcher is *dead* when neither its activation nor its last ping is
  more recent than ``ping_death_interval`` (60 s) - counted, by the
  sibling judging it, only over time that sibling itself was connected
  to the database: after a storage outage, nobody could ping, and the
  death interval starts again when the judge reconnects;
* every ping also looks at the next activated dispatcher (ordered by UUID,
  wrapping around): if it is dead, it is deactivated, and every job it held
  is handed to that job's retry policy.

Clocks of worker machines must agree (NTP): liveness compares wall times.
"""
from datetime import timedelta

import zope.event
from zope.interface import implementer

from plone.app.asyncjobs.engine.clock import utcnow
from plone.app.asyncjobs.engine.container import Container
from plone.app.asyncjobs.engine.events import DispatcherActivated
from plone.app.asyncjobs.engine.events import DispatcherDeactivated
from plone.app.asyncjobs.engine.events import DispatcherReactivated
from plone.app.asyncjobs.engine.events import DispatcherRegistered
from plone.app.asyncjobs.engine.events import DispatcherUnregistered
from plone.app.asyncjobs.engine.interfaces import IAgent
from plone.app.asyncjobs.engine.interfaces import IDispatcherAgents
from plone.app.asyncjobs.engine.log import events


@implementer(IDispatcherAgents)
class DispatcherAgents(Container):
    """One dispatcher's record in one queue, and its agents by name."""

    activated = None
    last_ping = None
    #: Set by an administrator: the agents claim nothing (running jobs finish).
    paused = False
    #: ``(hostname, pid)`` of the process that activated this record.
    process = None
    ping_interval = timedelta(seconds=30)
    ping_death_interval = timedelta(seconds=60)

    def __init__(self, uuid):
        super().__init__()
        self.UUID = uuid

    @property
    def queue(self):
        return self.parent.parent

    @property
    def dead(self):
        """True once no sign of life came for ``ping_death_interval``."""
        return self.dead_for(None)

    def dead_for(self, connected_since):
        """Whether a judge connected to the database since
        ``connected_since`` (an aware datetime, or ``None`` for always)
        saw no sign of life for ``ping_death_interval``."""
        signs = [t for t in (self.last_ping, self.activated, connected_since) if t is not None]
        if not self.activated and not self.last_ping:
            return False
        return max(signs) + self.ping_death_interval < utcnow()

    def activate(self, process=None):
        """Start working; jobs left from an earlier life are handed back first."""
        if self.activated:
            raise ValueError(f"dispatcher {self.UUID} is active already")
        self._clean()
        self.activated = self.last_ping = utcnow()
        self.process = process
        zope.event.notify(DispatcherActivated(self))

    def deactivate(self):
        """Stop working; hand every held job to its retry policy."""
        if not self.activated:
            raise ValueError(f"dispatcher {self.UUID} is not active")
        self.activated = None
        self._clean()
        zope.event.notify(DispatcherDeactivated(self))

    def reactivate(self):
        """Become active again after being wrongly found dead (keeps agents' jobs)."""
        self.activated = self.last_ping = utcnow()
        zope.event.notify(DispatcherReactivated(self))

    def pause(self):
        """Stop claiming jobs until :meth:`resume`; running jobs finish.

        Unlike deactivation this is no failure: the dispatcher keeps pinging
        and holding its jobs, and a restart does not undo it.
        """
        self.paused = True

    def resume(self):
        """Claim jobs again after :meth:`pause`."""
        self.paused = False

    def _clean(self):
        for agent in self._items.values():
            for job in list(agent):
                agent.give_up(job)

    # -- agents, as a mapping ----------------------------------------------

    def __setitem__(self, name, agent):
        if not IAgent.providedBy(agent):
            raise ValueError(f"{agent!r} is not an agent")
        if len(agent):
            raise ValueError("cannot add an agent that holds jobs")
        current = self._items.get(name)
        if current is not None:
            if len(current):
                raise ValueError(f"agent {name!r} holds jobs and cannot be replaced")
            current.retire()
        agent.name = name
        agent.parent = self
        self._items[name] = agent

    def __delitem__(self, name):
        self._items[name].retire()
        del self._items[name]

    def __repr__(self):
        state = "active" if self.activated else "inactive"
        if self.paused:
            state += ", paused"
        return f"<DispatcherAgents {self.UUID} {state}, agents {list(self._items)}>"


class Dispatchers(Container):
    """The dispatcher records of one queue, by UUID."""

    def register(self, uuid):
        """Create and return the record for ``uuid``."""
        if uuid in self._items:
            raise ValueError(f"dispatcher {uuid} is registered already")
        record = DispatcherAgents(uuid)
        record.parent = self
        self._items[uuid] = record
        zope.event.notify(DispatcherRegistered(record))
        return record

    def unregister(self, uuid):
        """Remove an inactive dispatcher's record; return it."""
        record = self._items[uuid]
        if record.activated:
            raise ValueError(f"dispatcher {uuid} is active; deactivate it first")
        del self._items[uuid]
        zope.event.notify(DispatcherUnregistered(record))
        return record

    def ping(self, uuid, connected_since=None):
        """Record that ``uuid`` is alive, and check on its next sibling.

        ``connected_since`` is when the pinging dispatcher's connection to
        the database last came back (``None``: it never broke): a sibling
        is found dead only after ``ping_death_interval`` without a sign of
        life during which the pinging dispatcher could see one.  Returns
        the UUID of a sibling found dead and deactivated, or ``None``.
        """
        record = self._items[uuid]
        now = utcnow()
        if not record.activated:
            events.critical(
                "dispatcher %s was found deactivated while alive; reactivating. "
                "Its ping_death_interval may be too short, commits too slow, "
                "or machine clocks out of step.", uuid,
            )
            record.reactivate()
        elif record.last_ping is None or now - record.last_ping >= record.ping_interval:
            record.last_ping = now
        sibling = self._next_active_sibling(uuid)
        if sibling is not None and sibling.dead_for(connected_since):
            events.error(
                "dispatcher %s found dispatcher %s dead (last ping %s); "
                "deactivating it and handing back its jobs",
                uuid, sibling.UUID, sibling.last_ping,
            )
            sibling.deactivate()
            return sibling.UUID
        return None

    def _next_active_sibling(self, uuid):
        active = [u for u, record in self._items.items() if record.activated and u != uuid]
        if not active:
            return None
        later = [u for u in active if u > uuid]
        return self._items[min(later) if later else min(active)]
