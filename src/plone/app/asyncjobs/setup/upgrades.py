"""Upgrade step handlers (registered in ``upgrades.zcml``)."""
import logging

from plone.registry.interfaces import IRegistry
from zope.component import getUtility

from plone.app.asyncjobs.migration.leftovers import remove
from plone.app.asyncjobs.migration.leftovers import survey
from plone.app.asyncjobs.schedules import saved
from plone.app.asyncjobs.service.service import connection_for


logger = logging.getLogger("plone.app.asyncjobs")

PROFILE_ID = "profile-plone.app.asyncjobs:default"


def reload_registry(setup_tool):
    """Re-import ``registry.xml``: records of new settings get their
    defaults; records that exist keep their values."""
    setup_tool.runImportStepFromProfile(PROFILE_ID, "plone.app.registry")
    logger.info("plone.app.asyncjobs: registry records re-imported")


def add_control_panel(setup_tool):
    """Import the permission's role map and the configlet."""
    for step in ("rolemap", "controlpanel"):
        setup_tool.runImportStepFromProfile(PROFILE_ID, step)
    logger.info("plone.app.asyncjobs: job control panel added")


def add_manage_workers(setup_tool):
    """Import the role map, which grants 'Manage workers' to Manager."""
    setup_tool.runImportStepFromProfile(PROFILE_ID, "rolemap")
    logger.info("plone.app.asyncjobs: 'Manage workers' granted to Manager")


#: Registry records of settings that were removed.
REMOVED_RECORDS = ("plone.app.asyncjobs.history_days",)


def remove_history_days(setup_tool):
    """Delete the records of removed settings (``history_days``: nothing
    read it) from the site's registry, where present."""
    registry = getUtility(IRegistry)
    for name in REMOVED_RECORDS:
        if name in registry.records:
            del registry.records[name]
            logger.info("plone.app.asyncjobs: registry record %s removed", name)


def remove_zc_async_data(setup_tool):
    """Log what zc.async left in the site's database, then remove it (see
    :mod:`plone.app.asyncjobs.migration`).  The data belongs to the whole
    database (every site in it).  Returns the survey."""
    connection = connection_for(setup_tool)
    found = survey(connection)
    for line in found.report():
        logger.info("plone.app.asyncjobs: %s", line)
    if found.found:
        remove(connection)
    return found


def remove_schedules_of_deleted_sites(setup_tool):
    """Remove the saved schedules of sites deleted before their schedules
    went with them (from the whole database, whichever site is upgraded);
    return their names."""
    return saved.remove_orphans(setup_tool.getPhysicalRoot())
