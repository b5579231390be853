"""Upgrade step handlers (registered in ``upgrades.zcml``)."""
import logging


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
