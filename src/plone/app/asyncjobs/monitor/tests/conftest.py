import os
import threading
import time

import pytest
import zope.testing.cleanup

from plone.app.asyncjobs.monitor.server import MonitorThread


def _wait_for(condition, timeout=5.0):
    """Poll `condition` until it holds or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def _open_fds():
    """The open file descriptors, but for /dev/null.

    Twisted opens /dev/null once per process and keeps it, to have a
    descriptor to spare when the process runs out of them.
    """
    fds = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") != "/dev/null":
                fds.add(fd)
        except FileNotFoundError:  # the descriptor listdir itself used
            pass
    return fds


@pytest.fixture(autouse=True)
def nothing_left_open():
    """Fail a test that leaves a thread or a file descriptor open."""
    threads = set(threading.enumerate())
    fds = _open_fds()
    yield
    assert _wait_for(lambda: set(threading.enumerate()) <= threads), (
        set(threading.enumerate()) - threads
    )
    assert _wait_for(lambda: _open_fds() <= fds), _open_fds() - fds


@pytest.fixture
def serve():
    """Start monitor servers on private reactor threads; stop them after."""
    monitors = []

    def start(plugins=None, address=("127.0.0.1", 0)):
        monitor = MonitorThread(address, plugins)
        monitors.append(monitor)
        return monitor.start()

    yield start
    for monitor in monitors:
        monitor.stop()


@pytest.fixture
def component_registry():
    """Give the test a clean global component registry, and clean it up."""
    zope.testing.cleanup.cleanUp()
    yield
    zope.testing.cleanup.cleanUp()
