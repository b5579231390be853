"""A dispatcher's part in recurring jobs: queue due slots, on time.

:meth:`SlotTimer.queue_due` queues the jobs of the due slots of every
schedule (:func:`.schedules.queue_due_slots`) in a transaction of its own,
then arms a reactor timer for the next slot, so that a schedule of one
second is served on time without polling every second.  The dispatcher
calls it after each poll; the timer calls it at each slot.

Every dispatcher does this; a conflict means another worker queued the
slot, and the retry finds it done (see :mod:`.schedules`).  Runs in the
reactor thread, with the dispatcher's connection.
"""
from plone.app.asyncjobs.engine import schedules
from plone.app.asyncjobs.engine.clock import utcnow
from plone.app.asyncjobs.engine.log import events
from plone.app.asyncjobs.engine.transactions import retry_conflicts


#: Seconds the timer fires after a slot, so that the clock has passed it.
SLACK = 0.001


class SlotTimer:
    """Queues schedule slots for a dispatcher (see the module doc)."""

    def __init__(self, connection, reactor, description):
        self.connection = connection
        self.reactor = reactor
        self.description = description
        self._timer = None

    def queue_due(self):
        """Queue the due slots; arm the timer for the next one.  Never raises
        (a failure is logged; the dispatcher's next poll tries again)."""
        self.stop()
        manager = self.connection.transaction_manager
        try:
            upcoming = retry_conflicts(lambda: schedules.queue_due_slots(self.connection),
                                       manager, f"schedule slots of {self.description}")
        except Exception:
            events.error("%s could not queue schedule slots; its next poll will",
                         self.description, exc_info=True)
            return
        if upcoming is not None:
            delay = max(0.0, (upcoming - utcnow()).total_seconds()) + SLACK
            self._timer = self.reactor.callLater(delay, self.queue_due)

    def stop(self):
        """Disarm the timer."""
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
