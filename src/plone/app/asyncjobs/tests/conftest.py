import uuid

import pytest
from pytest_plone import fixtures_factory

from plone.app.asyncjobs.testing import ASYNCJOBS_FUNCTIONAL_TESTING
from plone.app.asyncjobs.testing import ASYNCJOBS_INTEGRATION_TESTING
from plone.app.asyncjobs.testing import ASYNCJOBS_TWO_SITES_TESTING
from plone.app.asyncjobs.tests import jobs
from plone.app.asyncjobs.tests.layers import VIEWS_TESTING


globals().update(
    fixtures_factory(
        (
            (ASYNCJOBS_FUNCTIONAL_TESTING, "functional"),
            (ASYNCJOBS_INTEGRATION_TESTING, "integration"),
            (VIEWS_TESTING, "views"),
        )
    )
)
# Set up only while its tests run: a layer kept for the session would
# shadow the database of the layers above that share its base, and their
# tests would see its second site.
globals().update(fixtures_factory(((ASYNCJOBS_TWO_SITES_TESTING, "two_sites"),),
                                  keep_session=False))


@pytest.fixture
def recorded_events():
    """Record IJobSuccess / IJobFailure events while the test runs."""
    from zope.component import getGlobalSiteManager

    from plone.app.asyncjobs.interfaces import IJobFailure
    from plone.app.asyncjobs.interfaces import IJobSuccess

    registry = getGlobalSiteManager()
    del jobs.events[:]
    for interface in (IJobSuccess, IJobFailure):
        registry.registerHandler(jobs.record_event, (interface,))
    yield jobs.events
    for interface in (IJobSuccess, IJobFailure):
        registry.unregisterHandler(jobs.record_event, (interface,))
    del jobs.events[:]


@pytest.fixture
def gate_key():
    """A gate for :func:`jobs.report_and_wait` and the like, opened at the
    end in any case."""
    key = uuid.uuid4().hex
    yield key
    jobs.gate(key).set()


_OUR_THREADS = ("asyncjobs worker", "plone.app.asyncjobs")


def _our_threads():
    import threading

    return [t for t in threading.enumerate() if t.name.startswith(_OUR_THREADS)]


@pytest.fixture(autouse=True)
def no_thread_left():
    """Fail a test that leaves a worker or reactor thread running (the
    layer's dispatcher is stopped before this check)."""
    from plone.app.asyncjobs.engine.testing.waiting import wait_until

    yield
    wait_until(lambda: not _our_threads(), seconds=10,
               describe=lambda: f"threads left running: {_our_threads()}")
