"""Fixtures for the REST API tests: the functional layer, users, clients.

pytest-plone's fixtures for ``ASYNCJOBS_FUNCTIONAL_TESTING``
(``functional``, ``functional_portal``, ...) are those that
``tests/conftest.py`` made: zope.pytestlayer makes a layer's fixtures once
per process, so calling ``fixtures_factory`` here again would leave one of
the two folders without them.  Their function- and class-scoped fixtures
are brought in here, with the ``no_thread_left`` check.  Their
session-scoped ones are not: here they would be a second definition,
set up and torn down a second time.  :func:`functional_layers` keeps the
layers for the session instead, and tears down only those it set up.
"""
import pytest
import transaction
from plone import api
from plone.app.testing import SITE_OWNER_NAME
from plone.app.testing import setRoles
from zope.pytestlayer.fixture import LAYERS
from zope.pytestlayer.fixture import setup_layer
from zope.pytestlayer.fixture import teardown_layer

from plone.app.asyncjobs.engine.testing.waiting import wait_for_poll
from plone.app.asyncjobs.restapi.tests import USERS
from plone.app.asyncjobs.restapi.tests import Client
from plone.app.asyncjobs.testing import ASYNCJOBS_FUNCTIONAL_TESTING
from plone.app.asyncjobs.tests import conftest as shared


def _bottom_up(layer):
    """``layer`` and all its bases, each once, every base before its users."""
    result = []
    for base in layer.__bases__:
        if base is not object:
            result.extend(b for b in _bottom_up(base) if b not in result)
    return [*result, layer]


def _shared_fixtures():
    """The function- and class-scoped fixtures of the functional layer and
    its bases, and ``no_thread_left``, by name."""
    names = {"no_thread_left"}
    for layer in _bottom_up(ASYNCJOBS_FUNCTIONAL_TESTING):
        names.update(LAYERS[layer][scope] for scope in ("class", "function"))
    return {name: getattr(shared, name) for name in names}


globals().update(_shared_fixtures())


@pytest.fixture(scope="session", autouse=True)
def functional_layers(request):
    """Keep the functional layer and its bases set up for the session."""
    state = request.session.zopelayer_state
    ours = []
    for layer in _bottom_up(ASYNCJOBS_FUNCTIONAL_TESTING):
        if layer not in state.current:
            setup_layer(layer, request)
            ours.append(layer)
        state.keep_for_whole_session.add(layer)
    yield
    for layer in reversed(ours):
        if layer in state.current:  # unless the other folder's fixtures did
            teardown_layer(layer, request)


@pytest.fixture
def portal_url(functional):
    """``http://host:port/plone``."""
    return f"http://{functional['host']}:{functional['port']}/plone"


@pytest.fixture
def site(functional, functional_portal):
    """The portal, with the users of :data:`.USERS` (committed)."""
    for name, (password, roles) in USERS.items():
        if roles is not None:
            api.user.create(email=f"{name}@example.org", username=name, password=password)
            setRoles(functional_portal, name, roles)
    transaction.commit()
    return functional_portal


@pytest.fixture
def dispatcher(functional, site):
    """The layer's running dispatcher, after a poll of the site's database
    (so that it is registered in the queues)."""
    dispatcher = functional["asyncjobsDispatcher"]
    wait_for_poll(dispatcher)
    transaction.begin()
    return dispatcher


@pytest.fixture
def client(site, portal_url):
    """Requests as the site owner (a Manager)."""
    return Client(portal_url, SITE_OWNER_NAME)


@pytest.fixture
def client_as(site, portal_url):
    """``client_as("member")``; ``client_as(None)`` is anonymous."""
    return lambda user: Client(portal_url, user)
