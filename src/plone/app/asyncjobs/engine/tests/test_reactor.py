"""The private reactor thread."""
import os
import resource
import threading
import time

import pytest
from twisted.internet import pollreactor as reactor_module
from twisted.internet import threads

from plone.app.asyncjobs.engine.reactor import ReactorThread
from plone.app.asyncjobs.engine.testing.waiting import wait_until


@pytest.fixture
def many_descriptors():
    """More than 1024 descriptors open, so that new ones are numbered above
    what select() can watch (as in a Zope process with many connections)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 1100 + 64
    if soft < wanted:
        if hard != resource.RLIM_INFINITY and hard < wanted:
            pytest.skip(f"the descriptor limit ({hard}) is too low")
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    opened = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    yield
    for descriptor in opened:
        os.close(descriptor)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_calls_from_other_threads_run_with_descriptors_numbered_past_1024(
        many_descriptors):
    # A select reactor dropped its own wake-up pipe, numbered past 1024:
    # callFromThread then raised AttributeError and nothing ran.
    reactor_thread = ReactorThread()
    reactor = reactor_thread.start()
    try:
        ran, timer = threading.Event(), threading.Event()
        reactor.callFromThread(ran.set)
        assert ran.wait(10)
        reactor.callFromThread(reactor.callLater, 0.01, timer.set)
        assert timer.wait(10)
    finally:
        assert reactor_thread.stop()


def test_timed_calls_keep_their_delay_when_the_wall_clock_steps_back(monkeypatch):
    # By the wall clock, a step back of an hour postponed every poll, ping
    # and timer by an hour.
    stepped_back = threading.Event()

    def wall_clock():
        return time.time() - (3600 if stepped_back.is_set() else 0)

    monkeypatch.setattr(reactor_module.PollReactor, "seconds", staticmethod(wall_clock))
    reactor_thread = ReactorThread()
    reactor = reactor_thread.start()
    try:
        fired = threading.Event()
        threads.blockingCallFromThread(reactor, reactor.callLater, 0.2, fired.set)
        stepped_back.set()
        wait_until(fired.is_set, describe=lambda: "for the timed call")
    finally:
        assert reactor_thread.stop()
