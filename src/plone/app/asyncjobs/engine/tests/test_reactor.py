"""The private reactor thread."""
import os
import resource
import threading

import pytest

from plone.app.asyncjobs.engine.reactor import ReactorThread


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
