"""A deterministic stand-in for a Twisted reactor, for dispatcher tests.

It implements the part of the reactor interface the dispatcher uses.
Nothing runs by itself: a test calls :meth:`FakeReactor.advance` to let
time pass (running due calls in order) or :meth:`run_pending` to run what
other threads handed over with ``callFromThread``.
"""
import heapq
import itertools
import threading


class DelayedCall:
    def __init__(self, reactor, when, function, args, kwargs):
        self.reactor = reactor
        self.time = when
        self.function = function
        self.args = args
        self.kwargs = kwargs
        self.cancelled = False
        self.called = False

    def active(self):
        return not (self.cancelled or self.called)

    def cancel(self):
        self.cancelled = True

    def getTime(self):
        return self.time


class FakeReactor:
    """A reactor whose time only moves when the test says so."""

    def __init__(self):
        self.seconds = 0.0
        self.running = False
        self._calls = []
        self._order = itertools.count()
        self._from_threads = []
        self._lock = threading.Lock()
        self._shutdown_triggers = []

    def callLater(self, delay, function, *args, **kwargs):
        call = DelayedCall(self, self.seconds + delay, function, args, kwargs)
        heapq.heappush(self._calls, (call.time, next(self._order), call))
        return call

    def callFromThread(self, function, *args, **kwargs):
        with self._lock:
            self._from_threads.append((function, args, kwargs))

    def callWhenRunning(self, function, *args, **kwargs):
        if self.running:
            function(*args, **kwargs)
        else:
            self.callLater(0, function, *args, **kwargs)

    def addSystemEventTrigger(self, phase, event, function, *args, **kwargs):
        if (phase, event) != ("before", "shutdown"):
            raise NotImplementedError(f"only before/shutdown triggers, not {phase}/{event}")
        self._shutdown_triggers.append((function, args, kwargs))

    def start(self):
        self.running = True
        self.advance(0)

    def stop(self):
        for function, args, kwargs in self._shutdown_triggers:
            function(*args, **kwargs)
        self.running = False

    def run_pending(self):
        """Run the calls handed over by other threads; return how many ran."""
        with self._lock:
            pending, self._from_threads = self._from_threads, []
        for function, args, kwargs in pending:
            function(*args, **kwargs)
        return len(pending)

    def advance(self, seconds):
        """Move time forward ``seconds``, running every call due by then, in order."""
        self.run_pending()
        target = self.seconds + seconds
        ran = 0
        while self._calls and self._calls[0][0] <= target:
            when, _, call = heapq.heappop(self._calls)
            if not call.active():
                continue
            self.seconds = when
            call.called = True
            call.function(*call.args, **call.kwargs)
            ran += 1
            self.run_pending()
        self.seconds = target
        return ran
