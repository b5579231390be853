"""A private Twisted reactor running in a daemon thread.

Workers run their heartbeat on a reactor of their own instead of the global
``twisted.internet.reactor``: importing that module installs a reactor for
the whole process (in Zope, which has none), and its signal handlers would
fight the application's.  Never use helpers that import the global reactor
(``twisted.internet.task.LoopingCall`` does).
"""
import threading
import time


def private_reactor():
    """A new reactor, not installed: a poll reactor, or where the platform
    has no ``poll`` (Windows), a select reactor.  Its timed calls run by
    the monotonic clock: by the wall clock (Twisted's default), a step
    back of the system time (an NTP correction) postponed every poll,
    ping and timer by as much, and other workers took a live dispatcher
    for dead.

    Not select where poll exists: it cannot watch a descriptor numbered
    1024 or more, and a Zope process with many connections and files open
    gets such numbers for the reactor's own wake-up pipe, which the select
    reactor then drops: calls from other threads never run.  Not epoll: it
    holds a descriptor of its own that the reactor never closes, and a
    private reactor watches a few descriptors only.
    """
    try:
        from twisted.internet.pollreactor import PollReactor as Reactor
    except ImportError:
        from twisted.internet.selectreactor import SelectReactor as Reactor
    reactor = Reactor()
    reactor.seconds = time.monotonic  # before any call is scheduled
    return reactor


class ReactorThread:
    """Owns a private reactor and the daemon thread that runs it."""

    def __init__(self, name="plone.app.asyncjobs reactor"):
        self.reactor = private_reactor()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self):
        self.reactor.run(installSignalHandlers=False)

    def start(self):
        self.thread.start()
        return self.reactor

    @property
    def running(self):
        return self.thread.is_alive()

    def stop(self, timeout=10):
        """Stop the reactor (running its shutdown triggers) and join the thread.

        Returns whether the thread ended within ``timeout`` seconds.
        """
        if self.thread.is_alive():
            self.reactor.callFromThread(self.reactor.stop)
            self.thread.join(timeout)
        stopped = not self.thread.is_alive()
        if stopped and self.reactor.waker is not None:
            # A stopped reactor keeps its wake-up pipe open; close it.
            self.reactor.waker.connectionLost(None)
            self.reactor.waker = None
        return stopped
