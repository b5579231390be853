"""The GenericSetup profiles and the upgrade step."""
from plone import api
from plone.app.testing import TEST_USER_ID
from plone.app.testing import setRoles
from plone.browserlayer.utils import registered_layers
from plone.registry.interfaces import IRegistry
from Products.GenericSetup.upgrade import listUpgradeSteps
from zope.component import getUtility

from plone.app.asyncjobs.engine.queue import KEY
from plone.app.asyncjobs.interfaces import IAsyncJobsLayer
from plone.app.asyncjobs.interfaces import IAsyncJobsSettings


PROFILE = "plone.app.asyncjobs:default"


def test_installed_with_settings_layer_and_queues(portal):
    settings = getUtility(IRegistry).forInterface(IAsyncJobsSettings,
                                                  prefix="plone.app.asyncjobs")
    assert settings.default_queue == ""
    assert settings.default_retry_policy == ""
    assert "plone.app.asyncjobs.history_days" not in getUtility(IRegistry)
    assert IAsyncJobsLayer in registered_layers()
    assert KEY in portal._p_jar.root()
    setup_tool = api.portal.get_tool("portal_setup")
    assert setup_tool.getLastVersionForProfile(PROFILE) == ("1007",)


def test_uninstall_removes_settings_and_layer_but_keeps_the_jobs(portal):
    from plone.base.utils import get_installer

    setRoles(portal, TEST_USER_ID, ["Manager"])
    installer = get_installer(portal)
    assert installer.is_product_installed("plone.app.asyncjobs")
    installer.uninstall_product("plone.app.asyncjobs")
    assert not installer.is_product_installed("plone.app.asyncjobs")
    assert "plone.app.asyncjobs.default_queue" not in getUtility(IRegistry)
    assert IAsyncJobsLayer not in registered_layers()
    assert KEY in portal._p_jar.root()


def test_uninstall_removes_the_schedules_saved_in_the_site_only(portal, monkeypatch):
    from plone.base.utils import get_installer

    from plone.app.asyncjobs.api import get_queues
    from plone.app.asyncjobs.engine import schedules
    from plone.app.asyncjobs.schedules import saved
    from plone.app.asyncjobs.schedules import schedulables
    from plone.app.asyncjobs.schedules.zcml import make_schedule
    from plone.app.asyncjobs.tests import jobs

    monkeypatch.setattr(schedulables, "SCHEDULABLES", {"mark": schedulables.Schedulable(
        "mark", "plone.app.asyncjobs.tests.jobs:mark", "Mark")})
    setRoles(portal, TEST_USER_ID, ["Manager"])
    saved.save(portal, get_queues(portal), "nightly", {"schedulable": "mark", "interval": 60},
               replace=False)
    schedules.install(portal._p_jar, make_schedule("code", jobs.mark, "/plone", interval=60))
    get_installer(portal).uninstall_product("plone.app.asyncjobs")
    assert list(schedules.find(portal._p_jar).keys()) == ["code"]


def test_the_default_profile_installs_and_the_uninstall_profile_is_hidden(portal):
    from plone.base.interfaces import INonInstallable
    from plone.base.utils import get_installer
    from zope.component import getUtility

    installer = get_installer(portal)
    assert installer.get_install_profile("plone.app.asyncjobs")["id"] == PROFILE
    hidden = getUtility(INonInstallable, name="plone.app.asyncjobs")
    assert hidden.getNonInstallableProfiles() == ["plone.app.asyncjobs:uninstall"]


def test_upgrade_step_reloads_the_registry(portal):
    setup_tool = api.portal.get_tool("portal_setup")
    [step] = [s for s in listUpgradeSteps(setup_tool, PROFILE, "1000")
              if not isinstance(s, list) and s["source"] == ("1000",)]
    assert step["dest"] == ("1001",)
    registry = getUtility(IRegistry)
    del registry.records["plone.app.asyncjobs.default_retry_policy"]
    registry["plone.app.asyncjobs.default_queue"] = "kept"
    step["step"].doStep(setup_tool)
    assert registry["plone.app.asyncjobs.default_retry_policy"] == ""
    assert registry["plone.app.asyncjobs.default_queue"] == "kept"


def test_upgrade_step_to_1005_removes_the_unused_history_days_record(portal):
    from plone.registry import Record
    from plone.registry import field

    setup_tool = api.portal.get_tool("portal_setup")
    [step] = [s for s in listUpgradeSteps(setup_tool, PROFILE, "1004")
              if not isinstance(s, list) and s["source"] == ("1004",)]
    assert step["dest"] == ("1005",)
    registry = getUtility(IRegistry)
    registry.records["plone.app.asyncjobs.history_days"] = Record(field.Int(), 7)
    step["step"].doStep(setup_tool)
    assert "plone.app.asyncjobs.history_days" not in registry
    step["step"].doStep(setup_tool)  # again: nothing to do
    assert registry["plone.app.asyncjobs.default_queue"] == ""


def test_upgrade_step_to_1006_adds_the_saved_schedules_record(portal):
    setup_tool = api.portal.get_tool("portal_setup")
    [step] = [s for s in listUpgradeSteps(setup_tool, PROFILE, "1005")
              if not isinstance(s, list) and s["source"] == ("1005",)]
    assert step["dest"] == ("1006",)
    registry = getUtility(IRegistry)
    del registry.records["plone.app.asyncjobs.saved_schedules"]
    registry["plone.app.asyncjobs.default_queue"] = "kept"
    step["step"].doStep(setup_tool)
    assert registry["plone.app.asyncjobs.saved_schedules"] == "{}"
    assert registry["plone.app.asyncjobs.default_queue"] == "kept"


MANAGE_JOBS = "plone.app.asyncjobs: Manage jobs"
MANAGE_WORKERS = "plone.app.asyncjobs: Manage workers"


def granted_roles(portal, permission=MANAGE_JOBS):
    return {role["name"] for role in portal.rolesOfPermission(permission)
            if role["selected"]}


def test_manage_jobs_is_granted_to_managers_and_site_administrators(portal):
    assert granted_roles(portal) == {"Manager", "Site Administrator"}


def test_upgrade_step_to_1002_grants_manage_jobs(portal):
    setup_tool = api.portal.get_tool("portal_setup")
    [step] = [s for s in listUpgradeSteps(setup_tool, PROFILE, "1001")
              if not isinstance(s, list) and s["source"] == ("1001",)]
    assert step["dest"] == ("1002",)
    portal.manage_permission(MANAGE_JOBS, roles=[], acquire=False)
    assert granted_roles(portal) == set()
    step["step"].doStep(setup_tool)
    assert granted_roles(portal) == {"Manager", "Site Administrator"}


def test_manage_workers_is_granted_to_managers_only(portal):
    assert granted_roles(portal, MANAGE_WORKERS) == {"Manager"}


def test_upgrade_step_to_1003_grants_manage_workers_to_managers_only(portal):
    setup_tool = api.portal.get_tool("portal_setup")
    [step] = [s for s in listUpgradeSteps(setup_tool, PROFILE, "1002")
              if not isinstance(s, list) and s["source"] == ("1002",)]
    assert step["dest"] == ("1003",)
    portal.manage_permission(MANAGE_WORKERS, roles=["Site Administrator"], acquire=False)
    step["step"].doStep(setup_tool)
    assert granted_roles(portal, MANAGE_WORKERS) == {"Manager"}
