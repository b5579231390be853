"""Test layers and helpers for add-ons that queue jobs.

Layers
------

``ASYNCJOBS_FIXTURE``
    Plone with this package's ZCML and its profile ``:default``
    installed (which creates the job queues).  Base your own fixture on it.

``ASYNCJOBS_TWO_SITES_FIXTURE``, ``ASYNCJOBS_TWO_SITES_TESTING``
    A second Plone site, ``/other`` (:data:`OTHER_SITE_ID`), with the
    add-on, in the same database as ``/plone``, and a user of each site
    per role (:data:`SITE_USERS`); the functional layer has a dispatcher
    and a WSGI server.  For tests of what one site may see of another.

``ASYNCJOBS_INTEGRATION_TESTING``, ``ASYNCJOBS_FUNCTIONAL_TESTING``
    For each test: a ``DemoStorage`` stacked on the fixture's database (as
    plone.app.testing's functional layers do), the portal, the test user
    logged in, and a dispatcher whose worker threads open their
    connections from *that* database (resource ``zodbDB``), polling every
    0.05 s.  Jobs run only once committed, so both layers let tests commit;
    everything is discarded after the test.  The functional layer adds a
    WSGI server (resources ``host`` and ``port``) for tests that make real
    HTTP requests.  The dispatcher is the resource ``asyncjobsDispatcher``.

For your own fixture, instantiate :class:`AsyncJobsTesting`::

    MY_FIXTURE = MyFixture(bases=(ASYNCJOBS_FIXTURE,))   # a PloneSandboxLayer
    MY_JOBS_TESTING = AsyncJobsTesting(bases=(MY_FIXTURE,), name="MyAddon:Jobs")

zope.testrunner: ``layer = MY_JOBS_TESTING`` on a ``unittest.TestCase``.
pytest with pytest-plone, in ``conftest.py``::

    from pytest_plone import fixtures_factory
    globals().update(fixtures_factory(((MY_JOBS_TESTING, "integration"),)))

    def test_preview(portal):
        job = api.queue_job(make_preview, portal["doc"], 800)
        assert wait_for_result(job) == ...

Helpers
-------

:func:`wait_for_all_jobs` and :func:`wait_for_result` commit the test's
transaction (so that the worker sees the jobs), then poll until done.
They live in :mod:`plone.app.asyncjobs.waiting`, which imports without
``plone.app.testing``; job code and scripts import them from there.

Job functions must be importable by their module's full name: keep them in
a module of your package (say ``my.addon.tests.jobs``), not in the test
module itself, which pytest imports under a shortened name unless
``consider_namespace_packages = true`` is set for a native-namespace
package.
"""
import contextlib
import uuid

from Acquisition import aq_parent
from plone.app.testing import PLONE_FIXTURE
from plone.app.testing import FunctionalTesting
from plone.app.testing import PloneSandboxLayer
from plone.app.testing import applyProfile
from plone.testing.zope import WSGI_SERVER_FIXTURE
from zope.component.hooks import setSite

from plone.app.asyncjobs.engine import configure as engine_configure
from plone.app.asyncjobs.waiting import wait_for_all_jobs  # noqa: F401 (part of this module's API)
from plone.app.asyncjobs.waiting import wait_for_result  # noqa: F401


#: Seconds between two polls of a test dispatcher.
POLL_INTERVAL = 0.05


def start_dispatcher(db, poll_interval=POLL_INTERVAL, agent_size=3, uuid_=None,
                     shutdown_grace=5):
    """Start a dispatcher on ``db`` (creating the queues if missing).

    Its worker threads open their connections from ``db``: pass the very
    database the test's connections come from.  Stop it with
    :func:`stop_dispatcher`.
    """
    return engine_configure.start(
        db, poll_interval=poll_interval, agent_size=agent_size,
        uuid=uuid_ or uuid.uuid4(), shutdown_grace=shutdown_grace,
    )


def stop_dispatcher(dispatcher, timeout=30):
    """Stop a dispatcher from :func:`start_dispatcher` and its threads."""
    if not engine_configure.stop(dispatcher, timeout):
        raise RuntimeError(f"{dispatcher!r} did not stop within {timeout}s")


@contextlib.contextmanager
def dispatcher_running(db, **options):
    """``with dispatcher_running(db) as dispatcher:`` - see :func:`start_dispatcher`."""
    dispatcher = start_dispatcher(db, **options)
    try:
        yield dispatcher
    finally:
        stop_dispatcher(dispatcher)


class AsyncJobsFixture(PloneSandboxLayer):
    """Plone with plone.app.asyncjobs installed (ZCML and profile)."""

    defaultBases = (PLONE_FIXTURE,)

    def setUpZope(self, app, configurationContext):
        import plone.app.asyncjobs

        self.loadZCML(package=plone.app.asyncjobs, context=configurationContext)

    def setUpPloneSite(self, portal):
        applyProfile(portal, "plone.app.asyncjobs:default")


ASYNCJOBS_FIXTURE = AsyncJobsFixture(name="plone.app.asyncjobs:Fixture")

#: The id of the second site of :data:`ASYNCJOBS_TWO_SITES_FIXTURE`.
OTHER_SITE_ID = "other"
#: The users of :data:`ASYNCJOBS_TWO_SITES_FIXTURE`: user id -> (the site
#: whose user folder holds them, their roles there).  Each one's password
#: is :func:`password` of their id.
SITE_USERS = {
    "member": ("plone", ("Member",)),
    "editor": ("plone", ("Member", "Editor")),
    "reviewer": ("plone", ("Member", "Reviewer")),
    "siteadmin": ("plone", ("Member", "Site Administrator")),
    "sitemanager": ("plone", ("Member", "Manager")),
    "otheradmin": (OTHER_SITE_ID, ("Member", "Site Administrator")),
}


def password(user_id):
    """The password of a user of :data:`SITE_USERS`."""
    return f"secret-{user_id}"


class TwoSitesFixture(PloneSandboxLayer):
    """``/other`` next to ``/plone``, both with the add-on, and the users of
    :data:`SITE_USERS`; Zope's own ``admin`` (plone.app.testing's site
    owner) is the Manager of the Zope root."""

    defaultBases = (ASYNCJOBS_FIXTURE,)

    def setUpPloneSite(self, portal):
        from Products.CMFPlone.factory import addPloneSite

        app = aq_parent(portal)
        addPloneSite(app, OTHER_SITE_ID, title="Other site", default_language="en",
                     extension_ids=("plone.app.asyncjobs:default",))
        setSite(portal)
        for user_id, (site_id, roles) in SITE_USERS.items():
            app[site_id].acl_users.userFolderAddUser(user_id, password(user_id), roles, [])


ASYNCJOBS_TWO_SITES_FIXTURE = TwoSitesFixture(name="plone.app.asyncjobs:TwoSitesFixture")


class AsyncJobsTesting(FunctionalTesting):
    """plone.app.testing's functional life cycle plus a running dispatcher.

    Each test gets its own stacked ``DemoStorage`` (commits allowed) and a
    dispatcher on it; see the module doc.  Class attributes (or keyword
    arguments) ``poll_interval`` and ``agent_size`` tune the dispatcher.
    """

    poll_interval = POLL_INTERVAL
    agent_size = 3
    shutdown_grace = 5

    def __init__(self, bases=None, name=None, module=None, poll_interval=None,
                 agent_size=None):
        super().__init__(bases=bases, name=name, module=module)
        if poll_interval is not None:
            self.poll_interval = poll_interval
        if agent_size is not None:
            self.agent_size = agent_size
        self.dispatcher_uuid = uuid.uuid4()

    def testSetUp(self):
        super().testSetUp()
        try:
            self["asyncjobsDispatcher"] = start_dispatcher(
                self["zodbDB"], poll_interval=self.poll_interval,
                agent_size=self.agent_size, uuid_=self.dispatcher_uuid,
                shutdown_grace=self.shutdown_grace,
            )
        except BaseException:
            super().testTearDown()
            raise

    def testTearDown(self):
        dispatcher = self["asyncjobsDispatcher"]
        del self["asyncjobsDispatcher"]
        try:
            stop_dispatcher(dispatcher)
        finally:
            super().testTearDown()


ASYNCJOBS_INTEGRATION_TESTING = AsyncJobsTesting(
    bases=(ASYNCJOBS_FIXTURE,), name="plone.app.asyncjobs:Integration")

ASYNCJOBS_FUNCTIONAL_TESTING = AsyncJobsTesting(
    bases=(ASYNCJOBS_FIXTURE, WSGI_SERVER_FIXTURE), name="plone.app.asyncjobs:Functional")

ASYNCJOBS_TWO_SITES_TESTING = AsyncJobsTesting(
    bases=(ASYNCJOBS_TWO_SITES_FIXTURE, WSGI_SERVER_FIXTURE),
    name="plone.app.asyncjobs:TwoSites")
