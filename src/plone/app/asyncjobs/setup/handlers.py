"""Handlers of the GenericSetup profiles."""
from plone.base.interfaces import INonInstallable
from zope.interface import implementer

from plone.app.asyncjobs.service.queues import get_queues


@implementer(INonInstallable)
class HiddenProfiles:
    def getNonInstallableProfiles(self):
        """Hide the uninstall profile from the add-ons control panel."""
        return ["plone.app.asyncjobs:uninstall"]


def post_install(setup_tool):
    """Create the queues container, in this transaction, if no worker did."""
    get_queues(setup_tool._p_jar)


def post_uninstall(setup_tool):
    """Jobs, queues and their history stay in the database: other sites of
    the same database may share them, and a reinstall finds them again."""
