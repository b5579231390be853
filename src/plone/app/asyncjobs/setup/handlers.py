"""Handlers of the GenericSetup profiles."""
from Acquisition import aq_base
from Acquisition import aq_chain
from Acquisition import aq_inner
from Acquisition import aq_parent
from plone.base.interfaces import INonInstallable
from zope.interface import implementer

from plone.app.asyncjobs.schedules import saved
from plone.app.asyncjobs.service.queues import get_queues


@implementer(INonInstallable)
class HiddenProfiles:
    def getNonInstallableProfiles(self):
        """Hide the uninstall profile from the add-ons control panel."""
        return ["plone.app.asyncjobs:uninstall"]


def post_install(setup_tool):
    """Create the queues container, in this transaction, if no worker did.

    A site being created is not stored yet: its database is that of the
    nearest stored object above it (the Zope root)."""
    jars = (getattr(aq_base(obj), "_p_jar", None) for obj in aq_chain(setup_tool))
    get_queues(next(jar for jar in jars if jar is not None))


def post_uninstall(setup_tool):
    """Jobs, queues and their history stay in the database: other sites of
    the same database may share them, and a reinstall finds them again.
    The schedules saved in the site go (their registry record went with
    the settings): nothing would show or stop them any more."""
    site = aq_parent(aq_inner(setup_tool))
    saved.uninstall(site, setup_tool._p_jar)
