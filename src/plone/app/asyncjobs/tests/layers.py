"""The tests' own layer: how an add-on builds on ASYNCJOBS_FIXTURE."""
from plone.app.testing import PloneSandboxLayer

from plone.app.asyncjobs.testing import ASYNCJOBS_FIXTURE
from plone.app.asyncjobs.testing import AsyncJobsTesting


class ViewsFixture(PloneSandboxLayer):
    """Test views that queue jobs in real requests."""

    defaultBases = (ASYNCJOBS_FIXTURE,)

    def setUpZope(self, app, configurationContext):
        import plone.app.asyncjobs.tests

        self.loadZCML("testing.zcml", package=plone.app.asyncjobs.tests)


VIEWS_FIXTURE = ViewsFixture(name="plone.app.asyncjobs.tests:ViewsFixture")
VIEWS_TESTING = AsyncJobsTesting(bases=(VIEWS_FIXTURE,), name="plone.app.asyncjobs.tests:Views")
