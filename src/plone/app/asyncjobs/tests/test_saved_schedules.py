"""Schedules saved in a site (registry, control panel): the allow-list of
schedulables, the checks of a declaration, who may save them, and that a
saved schedule's jobs run in its site as the user who saved it."""
import json
from urllib.parse import quote

import pytest
import requests
import transaction
from Acquisition import aq_base
from plone.app.testing import SITE_OWNER_NAME
from plone.app.testing import SITE_OWNER_PASSWORD
from plone.app.testing import TEST_USER_ID
from plone.app.testing import TEST_USER_NAME
from plone.app.testing import login
from plone.app.testing import logout
from plone.app.testing import setRoles
from plone.registry.interfaces import IRegistry
from Products.GenericSetup.upgrade import listUpgradeSteps
from zope.component import getUtility
from zope.component.hooks import setSite
from zope.configuration.exceptions import ConfigurationError

from plone.app.asyncjobs import access
from plone.app.asyncjobs import api as jobs_api
from plone.app.asyncjobs.engine import schedules as engine_schedules
from plone.app.asyncjobs.engine.testing.waiting import wait_until
from plone.app.asyncjobs.inspection import QueryError
from plone.app.asyncjobs.schedules import console
from plone.app.asyncjobs.schedules import saved
from plone.app.asyncjobs.schedules import schedulables
from plone.app.asyncjobs.schedules import zcml
from plone.app.asyncjobs.schedules.schedulables import Schedulable
from plone.app.asyncjobs.testing import OTHER_SITE_ID
from plone.app.asyncjobs.testing import wait_for_result
from plone.app.asyncjobs.tests import jobs
from plone.app.asyncjobs.tests.test_controlpanel import open_browser
from plone.app.asyncjobs.tests.test_controlpanel import status_messages
from plone.app.asyncjobs.tests.test_controlpanel import tree
from plone.app.asyncjobs.tests.test_schedules import load
from plone.app.asyncjobs.tests.test_setup import PROFILE


DESCRIBE = Schedulable("describe", "plone.app.asyncjobs.tests.jobs:describe", "Where am I")
MARK = Schedulable("mark", "plone.app.asyncjobs.tests.jobs:mark", "Leave a mark")


@pytest.fixture
def offered(monkeypatch):
    """The schedulables ``describe`` and ``mark`` of :mod:`..tests.jobs`."""
    monkeypatch.setattr(schedulables, "SCHEDULABLES",
                        {DESCRIBE.name: DESCRIBE, MARK.name: MARK})
    return schedulables.SCHEDULABLES


def as_site_admin(portal):
    setRoles(portal, TEST_USER_ID, ["Member", "Site Administrator"])
    login(portal, TEST_USER_NAME)


DAILY = {"schedulable": "mark", "cron": "0 3 * * *", "timezone": "Europe/Brussels",
         "arguments": {"value": "hello"}}


def nested(depth):
    """A JSON array ``depth`` levels deep."""
    value = []
    for _ in range(depth - 1):
        value = [value]
    return value


def nested_text(depth):
    """The form's JSON text of arguments whose value is :func:`nested`."""
    return '{"value": ' + "[" * depth + "]" * depth + "}"


# -- the allow-list ------------------------------------------------------------------


def test_the_directive_offers_a_function(monkeypatch):
    monkeypatch.setattr(schedulables, "SCHEDULABLES", {})
    load("""<asyncjobs:schedulable name="report" title="Report"
              handler="plone.app.asyncjobs.tests.jobs.mark" />""")
    assert schedulables.SCHEDULABLES == {
        "report": Schedulable("report", "plone.app.asyncjobs.tests.jobs:mark", "Report")}
    assert schedulables.allows("plone.app.asyncjobs.tests.jobs:mark")
    assert not schedulables.allows("plone.app.asyncjobs.tests.jobs:fail")


def test_two_schedulables_of_one_name_conflict(monkeypatch):
    monkeypatch.setattr(schedulables, "SCHEDULABLES", {})
    one = """<asyncjobs:schedulable name="r" handler="plone.app.asyncjobs.tests.jobs.mark" />"""
    with pytest.raises(ConfigurationError, match="Conflicting"):
        load(one + one)


def test_zcml_schedule_names_may_not_hold_the_saved_schedules_at_sign():
    with pytest.raises(ValueError, match="'@'"):
        zcml.make_schedule("nightly@plone", jobs.mark, "/plone", interval=5)


# -- declarations --------------------------------------------------------------------


@pytest.mark.parametrize("change, field, message", [
    ({"schedulable": "os:system"}, "schedulable", "unknown schedulable 'os:system'"),
    ({"cron": None}, "cron", "either a cron expression or an interval"),
    ({"interval": 60}, "cron", "either a cron expression or an interval"),
    ({"cron": "every night"}, "cron", "invalid cron expression"),
    ({"timezone": "Nowhere/Land"}, "timezone", "unknown timezone"),
    ({"cron": None, "interval": 0.5}, "interval", "at least 1"),
    ({"cron": None, "interval": "5"}, "interval", "number of seconds"),
    ({"cron": None, "interval": float("nan")}, "interval", "number of seconds"),
    ({"cron": None, "interval": float("inf")}, "interval", "number of seconds"),
    ({"cron": None, "interval": 3e11}, "interval", "interval: "),  # no slot before 10000
    ({"cron": None, "interval": 1e15}, "interval", "too long"),
    ({"cron": "0 0 30 2 *"}, "cron", "cron: "),  # February 30th: it never fires
    ({"misfire_grace": float("nan")}, "misfire_grace", "number of seconds"),
    ({"misfire_grace": float("inf")}, "misfire_grace", "number of seconds"),
    ({"misfire_grace": 1e15}, "misfire_grace", "too long"),
    ({"cron": None, "interval": 10 ** 400}, "interval", "number of seconds"),
    ({"misfire_grace": 10 ** 400}, "misfire_grace", "number of seconds"),
    ({"arguments": [1, 2]}, "arguments", "JSON object"),
    ({"arguments": {"value": {1, 2}}}, "arguments", "JSON object"),
    # The arguments sit one level down in a REST body, at most 16 deep.
    ({"arguments": {"value": nested(saved.MAX_ARGUMENTS_DEPTH)}}, "arguments",
     "nested more than 15 levels deep"),
    ({"arguments": {"value": nested(500)}}, "arguments", "nested more than 15 levels deep"),
    ({"arguments": {"value": "x" * saved.MAX_ARGUMENTS_BYTES}}, "arguments", "longer than"),
    ({"arguments": {"value": "é" * (saved.MAX_ARGUMENTS_BYTES // 2)}}, "arguments",
     "longer than 65536 bytes"),
    ({"quota_names": "a"}, "quota_names", "list"),
    ({"retry_policy": "sometimes"}, "retry_policy", "unknown retry policy"),
    ({"misfire": "twice"}, "misfire", "once, all, skip"),
    ({"enabled": "yes"}, "enabled", "true or false"),
    ({"user": "admin"}, "user", "not a field"),
])
def test_bad_declarations_name_their_field(offered, change, field, message):
    with pytest.raises(QueryError, match=message) as raised:
        saved.declaration({**DAILY, **change})
    assert raised.value.field == field


@pytest.mark.parametrize("change, field, message", [
    ({"queue": "nowhere"}, "queue", "there is no queue 'nowhere'"),
    ({"quota_names": ["nowhere"]}, "quota_names", "unknown quota name 'nowhere'"),
])
def test_a_schedule_names_an_existing_queue_and_quotas(portal, offered, change, field,
                                                       message):
    as_site_admin(portal)
    with pytest.raises(QueryError, match=message) as raised:
        saved.save(portal, jobs_api.get_queues(portal), "nightly", {**DAILY, **change},
                   replace=False)
    assert raised.value.field == field
    assert saved.saved(portal) == {}


@pytest.mark.parametrize("text, message", [
    ("{value: 1}", "not valid JSON"),
    (nested_text(30000), "nested more than 15 levels deep"),  # the parser's recursion
    (nested_text(100000), "longer than 65536 bytes"),
])
def test_bad_json_arguments_are_refused(text, message):
    with pytest.raises(QueryError, match=message) as raised:
        saved.parse_arguments(text)
    assert raised.value.field == "arguments"


def test_arguments_as_deep_as_a_rest_body_allows_are_accepted(offered):
    value = nested(saved.MAX_ARGUMENTS_DEPTH - 1)
    assert saved.declaration({**DAILY, "arguments": {"value": value}})["arguments"] == {
        "value": value}
    text = nested_text(saved.MAX_ARGUMENTS_DEPTH - 1)
    assert saved.parse_arguments(text) == {"value": value}
    # Bytes of UTF-8, as in a REST body: 40 kB of accented text, not the
    # 120,000 characters of its escaped form.
    accented = {"title": "é" * 20000}
    assert saved.declaration({**DAILY, "arguments": accented})["arguments"] == accented


# -- saving ----------------------------------------------------------------------------


def test_a_site_administrator_saves_a_schedule_that_runs_as_them(portal, offered):
    as_site_admin(portal)
    queues = jobs_api.get_queues(portal)
    record = saved.save(portal, queues, "nightly", DAILY, replace=False)
    assert record.name == "nightly@plone" and saved.is_saved(record)
    schedule = record.schedule
    assert schedule.func == MARK.handler and schedule.kwargs == {"value": "hello"}
    assert str(schedule.trigger) == "cron '0 3 * * *' (Europe/Brussels)"
    factory = schedule.job_factory
    assert (factory.site_path, factory.user_id, factory.user_folder_path) == (
        ("", "plone"), TEST_USER_ID, ("", "plone", "acl_users"))
    stored = json.loads(getUtility(IRegistry)[saved.RECORD])["nightly"]
    assert stored["user"] == TEST_USER_ID and stored["schedulable"] == "mark"
    assert stored["user_folder"] == "/plone/acl_users"
    assert engine_schedules.get_record(portal._p_jar, "nightly@plone") is record
    with pytest.raises(QueryError, match="exists already"):
        saved.save(portal, queues, "nightly", DAILY, replace=False)


def test_whoever_changes_a_schedule_becomes_its_user(portal, offered):
    as_site_admin(portal)
    queues = jobs_api.get_queues(portal)
    saved.save(portal, queues, "nightly", DAILY, replace=False)
    logout()
    login(portal.getPhysicalRoot(), SITE_OWNER_NAME)  # the root's Manager
    record = saved.save(portal, queues, "nightly", {"enabled": False}, replace=True)
    factory = record.schedule.job_factory
    assert (factory.user_id, factory.user_folder_path) == (SITE_OWNER_NAME, ("", "acl_users"))
    assert record.schedule.enabled is False and record.schedule.kwargs == {"value": "hello"}
    with pytest.raises(LookupError):
        saved.save(portal, queues, "missing", DAILY, replace=True)


@pytest.mark.parametrize("roles", [[], ["Member"], ["Member", "Editor", "Reviewer"]])
def test_users_without_manage_portal_may_not_save_or_delete(portal, offered, roles):
    queues = jobs_api.get_queues(portal)
    if roles:
        setRoles(portal, TEST_USER_ID, roles)
        login(portal, TEST_USER_NAME)
    else:
        logout()
    with pytest.raises(saved.EditRefused):
        saved.save(portal, queues, "nightly", DAILY, replace=False)
    with pytest.raises(saved.EditRefused):
        saved.delete(portal, queues, "nightly")
    assert saved.saved(portal) == {}
    assert engine_schedules.find(portal._p_jar) is None or (
        "nightly@plone" not in engine_schedules.find(portal._p_jar))


def test_a_saved_schedule_never_replaces_one_declared_in_code(portal, offered):
    engine_schedules.install(portal._p_jar, zcml.make_schedule(
        "code", jobs.mark, "/plone", interval=86400))
    record = engine_schedules.get_record(portal._p_jar, "code")
    object.__setattr__(record.schedule, "name", "nightly@plone")  # as engine code could
    engine_schedules.find(portal._p_jar)._items["nightly@plone"] = record
    as_site_admin(portal)
    with pytest.raises(QueryError, match="code declares"):
        saved.save(portal, jobs_api.get_queues(portal), "nightly", DAILY, replace=False)


def test_deleting_removes_the_declaration_and_the_engine_schedule(portal, offered):
    as_site_admin(portal)
    queues = jobs_api.get_queues(portal)
    saved.save(portal, queues, "nightly", DAILY, replace=False)
    saved.delete(portal, queues, "nightly")
    assert saved.saved(portal) == {}
    assert "nightly@plone" not in engine_schedules.find(portal._p_jar)
    with pytest.raises(LookupError):
        saved.delete(portal, queues, "nightly")


def save_nightly_in_both_sites(two_sites):
    """Save a schedule "nightly" in each site, by its Site Administrator;
    return the application."""
    app = two_sites["app"]
    queues = jobs_api.get_queues(app["plone"])
    for site_id, user_id in (("plone", "siteadmin"), (OTHER_SITE_ID, "otheradmin")):
        site = app[site_id]
        setSite(site)
        login(site, user_id)
        saved.save(site, queues, "nightly", DAILY, replace=False)
        logout()
    return app


def test_saved_schedules_move_with_their_site_and_go_when_it_is_deleted(two_sites, offered):
    app = save_nightly_in_both_sites(two_sites)
    record = engine_schedules.get_record(app._p_jar, "nightly@other")
    record.pause()
    transaction.commit()
    login(app, SITE_OWNER_NAME)
    app.manage_renameObject(OTHER_SITE_ID, "renamed")
    transaction.commit()
    found = engine_schedules.find(app._p_jar)
    assert sorted(found.keys()) == ["nightly@plone", "nightly@renamed"]
    # The same record: its state (here, the pause) goes along.
    assert found["nightly@renamed"] is record and record.paused
    factory = record.schedule.job_factory
    assert factory.site_path == ("", "renamed")
    assert factory.user_id == "otheradmin"
    assert factory.user_folder_path == ("", "renamed", "acl_users")
    assert saved.saved_name(record, app["renamed"]) == "nightly"
    app.manage_delObjects(["renamed"])
    transaction.commit()
    assert list(engine_schedules.find(app._p_jar).keys()) == ["nightly@plone"]


def test_the_upgrade_to_1007_removes_the_schedules_of_sites_deleted_before(
        two_sites, offered):
    app = save_nightly_in_both_sites(two_sites)
    transaction.commit()
    # Deleted the way it went before schedules went with their site.
    app._delObject(OTHER_SITE_ID, suppress_events=True)
    transaction.commit()
    found = engine_schedules.find(app._p_jar)
    assert sorted(found.keys()) == ["nightly@other", "nightly@plone"]
    setup_tool = app["plone"].portal_setup
    [step] = [step for step in listUpgradeSteps(setup_tool, PROFILE, "1006")
              if not isinstance(step, list) and step["source"] == ("1006",)]
    assert step["dest"] == ("1007",)
    step["step"].doStep(setup_tool)
    assert list(found.keys()) == ["nightly@plone"]
    step["step"].doStep(setup_tool)  # again: nothing to do
    assert list(found.keys()) == ["nightly@plone"]
    # A site is the one at the path itself, not one acquired there.
    assert aq_base(saved._site_at(app, ("", "plone"))) is aq_base(app["plone"])
    assert saved._site_at(app, ("", "plone", "plone")) is None


def test_saved_schedules_are_paused_resumed_and_run_by_their_editors(portal, offered):
    """A Site Administrator may act on the site's saved schedules, not on
    those declared in code (database-wide actions)."""
    queues = jobs_api.get_queues(portal)
    code = engine_schedules.install(portal._p_jar, zcml.make_schedule(
        "code", jobs.mark, "/plone", interval=86400, args=("x",)))
    as_site_admin(portal)
    record = saved.save(portal, queues, "nightly", DAILY, replace=False)
    assert console.may_act(record, portal) and not console.may_act(code, portal)
    console.pause(record, portal, TEST_USER_ID)
    assert record.paused
    console.resume(record, portal, TEST_USER_ID)
    job = console.run_now(queues, record, portal, TEST_USER_ID)
    assert wait_for_result(job) == "hello"
    with pytest.raises(access.ScopeRefused):
        console.pause(code, portal, TEST_USER_ID)


def test_run_now_of_a_schedule_saved_by_the_roots_manager_is_refused_to_a_site_admin(
        portal, offered):
    login(portal.getPhysicalRoot(), SITE_OWNER_NAME)
    queues = jobs_api.get_queues(portal)
    record = saved.save(portal, queues, "root", DAILY, replace=False)
    logout()
    as_site_admin(portal)
    with pytest.raises(access.RunAsRefused):
        console.run_now(queues, record, portal, TEST_USER_ID)
    assert record.last_runs() == []


# -- running -----------------------------------------------------------------------------


def test_a_worker_runs_a_saved_schedule_in_its_site_as_the_user_who_saved_it(portal, offered):
    as_site_admin(portal)
    record = saved.save(portal, jobs_api.get_queues(portal), "where",
                        {"schedulable": "describe", "interval": 1}, replace=False)
    transaction.commit()
    wait_until(lambda: record.last_runs(), seconds=30, sync=transaction.begin)
    [(_, job, note)] = record.last_runs()[-1:]
    result = wait_for_result(job, commit=False)
    assert result["site"] == "/plone" and result["path"] == "/plone"
    assert result["user"] == TEST_USER_ID and result["anonymous"] is False
    saved.delete(portal, jobs_api.get_queues(portal), "where")
    transaction.commit()


def test_a_withdrawn_schedulable_queues_nothing_more(portal, offered):
    as_site_admin(portal)
    record = saved.save(portal, jobs_api.get_queues(portal), "gone",
                        {"schedulable": "describe", "interval": 1}, replace=False)
    del offered["describe"]
    transaction.commit()
    wait_until(lambda: record.last_runs(), seconds=30, sync=transaction.begin)
    [(_, job, note)] = record.last_runs()[-1:]
    assert job is None and "no longer a schedulable" in note
    saved.delete(portal, jobs_api.get_queues(portal), "gone")
    transaction.commit()


# -- the console page --------------------------------------------------------------------


def test_the_page_adds_changes_and_deletes_a_saved_schedule(functional, functional_portal,
                                                            offered):
    browser = open_browser(functional)
    url = f"{functional_portal.absolute_url()}/@@asyncjobs-schedules"
    browser.open(url)
    browser.getControl(name="saved.name").value = "nightly"
    browser.getControl(name="saved.schedulable").value = ["mark"]
    browser.getControl(name="saved.cron").value = "0 3 * * *"
    browser.getControl(name="saved.arguments").value = "{value: 1}"
    browser.getControl(name="form.buttons.save").click()
    [error] = tree(browser).cssselect("#asyncjobs-schedule-error")
    assert "arguments: not valid JSON" in error.text_content()
    assert browser.getControl(name="saved.name").value == "nightly"  # kept
    browser.getControl(name="saved.arguments").value = '{"value": "hi"}'
    browser.getControl(name="form.buttons.save").click()
    assert status_messages(browser) == ["Schedule nightly@plone was saved; it runs as you."]
    [row] = tree(browser).cssselect("#asyncjobs-schedules tbody tr")
    assert row.get("data-schedule") == "nightly@plone" and SITE_OWNER_NAME in row.text_content()
    [edit] = row.cssselect("a.asyncjobs-edit-schedule")
    browser.open(edit.get("href"))
    assert browser.url.endswith("@@asyncjobs-schedules?edit=nightly")
    assert browser.getControl(name="saved.arguments").value == '{"value": "hi"}'
    browser.getControl(name="saved.cron").value = ""
    browser.getControl(name="saved.interval").value = "3600"
    browser.getControl(name="form.buttons.save").click()
    transaction.begin()
    record = engine_schedules.get_record(functional_portal._p_jar, "nightly@plone")
    assert str(record.schedule.trigger) == "every 1:00:00"
    browser.getControl(name="form.buttons.delete").click()
    assert status_messages(browser) == ["Schedule nightly@plone was deleted."]
    transaction.begin()
    assert saved.saved(functional_portal) == {}


def test_the_page_shows_the_error_of_a_form_with_fields_left_out(functional,
                                                                functional_portal, offered):
    """A POST without the form's other fields (a script's, say) gets the
    form again with the error, not a failure."""
    browser = open_browser(functional)
    browser.open(f"{functional_portal.absolute_url()}/@@asyncjobs-schedules")
    token = browser.getControl(name="_authenticator").value
    browser.post(f"{functional_portal.absolute_url()}/@@asyncjobs-schedules",
                 f"_authenticator={token}&form.buttons.save=1&saved.name=x"
                 "&saved.schedulable=mark&saved.cron=never")
    [error] = tree(browser).cssselect("#asyncjobs-schedule-error")
    assert "invalid cron expression 'never'" in error.text_content()
    assert browser.getControl(name="saved.enabled").value == []  # left out: unchecked


def rest(functional, method, path, body=None):
    """The answer to a REST request; ``body`` may hold NaN (as Python's JSON reads it)."""
    return requests.request(
        method, f"http://{functional['host']}:{functional['port']}/plone/@asyncjobs/{path}",
        data=None if body is None else json.dumps(body),
        auth=(SITE_OWNER_NAME, SITE_OWNER_PASSWORD),
        headers={"Accept": "application/json", "Content-Type": "application/json"}, timeout=60)


@pytest.mark.parametrize("change, field", [
    ({"interval": 3e11}, "interval"),
    ({"interval": float("nan")}, "interval"),
    ({"interval": 1e15}, "interval"),
    ({"interval": 60, "misfire_grace": 1e15}, "misfire_grace"),
    ({"cron": "0 0 30 2 *"}, "cron"),
    ({"interval": 10 ** 400}, "interval"),  # no float holds it
    ({"interval": 60, "misfire_grace": 10 ** 400}, "misfire_grace"),
])
def test_rest_refuses_a_schedule_whose_slots_cannot_be_computed(functional, functional_portal,
                                                                offered, change, field):
    """It would be stored, and then fail every listing of the schedules."""
    answer = rest(functional, "POST", "schedules",
                  {"name": "bad", "schedulable": "mark", **change})
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["field"] == field
    transaction.begin()
    assert saved.saved(functional_portal) == {}
    assert rest(functional, "GET", "schedules").status_code == 200


@pytest.mark.parametrize("change, field", [
    ({"interval": 10 ** 400}, "interval"),
    ({"misfire_grace": 10 ** 400}, "misfire_grace"),
])
def test_rest_patch_refuses_numbers_no_float_holds(functional, functional_portal, offered,
                                                   change, field):
    assert rest(functional, "POST", "schedules",
                {"name": "hourly", "schedulable": "mark", "interval": 3600}).status_code == 201
    answer = rest(functional, "PATCH", "schedules/hourly@plone", change)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["field"] == field
    transaction.begin()
    assert saved.saved(functional_portal)["hourly"]["interval"] == 3600
    assert rest(functional, "DELETE", "schedules/hourly@plone").status_code == 204


def post_form(functional, functional_portal, fields):
    browser = open_browser(functional)
    url = f"{functional_portal.absolute_url()}/@@asyncjobs-schedules"
    browser.open(url)
    token = browser.getControl(name="_authenticator").value
    browser.post(url, f"_authenticator={token}&form.buttons.save=1&saved.name=bad"
                      f"&saved.schedulable=mark&{fields}")
    return browser


@pytest.mark.parametrize("fields, error", [
    ("saved.interval=3e11", "interval: "),
    ("saved.interval=nan", "interval: must be a number"),
    ("saved.interval=inf", "interval: must be a number"),
    ("saved.cron=0+0+30+2+*", "cron: "),
    ("saved.cron=0+3+*+*+*&saved.cron=0+4+*+*+*", "cron: give it once"),
    ("saved.interval:int=60", "interval: give it once"),
    # Too deep to store (pickling would recurse), too deep to parse, too long.
    (f"saved.interval=60&saved.arguments={quote(nested_text(500))}",
     "arguments: nested more than 15 levels deep"),
    (f"saved.interval=60&saved.arguments={quote(nested_text(30000))}",
     "arguments: nested more than 15 levels deep"),
    (f"saved.interval=60&saved.arguments={quote(nested_text(100000))}",
     "arguments: longer than 65536 bytes"),
])
def test_the_page_refuses_a_schedule_it_could_not_run(functional, functional_portal,
                                                      offered, fields, error):
    browser = post_form(functional, functional_portal, fields)
    [shown] = tree(browser).cssselect("#asyncjobs-schedule-error")
    assert error in shown.text_content()
    transaction.begin()
    assert saved.saved(functional_portal) == {}
    browser.open(f"{functional_portal.absolute_url()}/@@asyncjobs-schedules")
    assert browser.headers["status"].startswith("200")


def test_the_page_refuses_two_schedules_to_change(functional, functional_portal, offered):
    browser = open_browser(functional)
    browser.raiseHttpErrors = False
    browser.open(f"{functional_portal.absolute_url()}/@@asyncjobs-schedules?edit=a&edit=b")
    assert browser.headers["status"].startswith("400")
    assert status_messages(browser) == [
        "The schedule could not be opened: edit: give it once, as text"]
    assert browser.getControl(name="saved.editing").value == ""  # the form adds one


def test_zopes_system_user_may_not_save_a_schedule(portal, offered):
    """Its jobs would run as a user no one can check roles against."""
    from AccessControl.SecurityManagement import newSecurityManager
    from AccessControl.users import system

    newSecurityManager(None, system)
    with pytest.raises(saved.EditRefused, match="real user"):
        saved.save(portal, jobs_api.get_queues(portal), "nightly", DAILY, replace=False)
