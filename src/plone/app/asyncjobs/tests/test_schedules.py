"""Plone schedules: the ZCML directive, and slot jobs that run in the site
as the schedule's declared user (Anonymous when none is declared)."""
import pytest
import transaction
from plone.app.testing import SITE_OWNER_NAME
from plone.app.testing import TEST_USER_ID
from plone.app.testing import setRoles
from zope.configuration import xmlconfig
from zope.configuration.exceptions import ConfigurationError

import plone.app.asyncjobs.schedules
from plone.app.asyncjobs import access
from plone.app.asyncjobs import api as jobs_api
from plone.app.asyncjobs.engine import schedules as engine_schedules
from plone.app.asyncjobs.engine.testing.waiting import wait_until
from plone.app.asyncjobs.schedules import console
from plone.app.asyncjobs.schedules import zcml
from plone.app.asyncjobs.schedules.install import install_declared
from plone.app.asyncjobs.schedules.jobs import SiteJobFactory
from plone.app.asyncjobs.testing import wait_for_result
from plone.app.asyncjobs.tests import jobs
from plone.app.asyncjobs.tests.test_controlpanel import open_browser
from plone.app.asyncjobs.tests.test_controlpanel import status_messages
from plone.app.asyncjobs.tests.test_controlpanel import tree


def load(directives):
    context = xmlconfig.file("meta.zcml", plone.app.asyncjobs.schedules)
    xmlconfig.string(f"""
        <configure xmlns="http://namespaces.zope.org/zope"
                   xmlns:asyncjobs="http://namespaces.plone.org/asyncjobs">
          {directives}
        </configure>""", context=context)


@pytest.fixture
def declared(monkeypatch):
    monkeypatch.setattr(zcml, "DECLARED", {})
    return zcml.DECLARED


def test_the_directive_declares_a_schedule(declared):
    load("""<asyncjobs:schedule name="nightly" site="/plone" cron="0 3 * * *"
              timezone="Europe/Brussels" handler="plone.app.asyncjobs.tests.jobs.add"
              args="1 2" user="editor" queue="other" misfire="all" misfire_grace="30" />""")
    schedule = declared["nightly"]
    assert str(schedule.trigger) == "cron '0 3 * * *' (Europe/Brussels)"
    assert schedule.func == "plone.app.asyncjobs.tests.jobs:add"
    assert schedule.args == ("1", "2") and schedule.queue == "other"
    assert schedule.misfire == "all" and schedule.misfire_grace.total_seconds() == 30
    assert schedule.job_factory == SiteJobFactory(
        ("", "plone"), "editor", ("", "plone", "acl_users"))


@pytest.mark.parametrize("attributes, message", [
    ('interval="5" cron="* * * * *"', "either cron or interval"),
    ('', "either cron or interval"),
    ('cron="every day"', "invalid cron expression"),
    ('cron="* * * * *" timezone="Nowhere/Land"', "unknown timezone"),
    ('interval="5" user_folder="/acl_users"', None),
])
def test_bad_directives_fail_at_startup(declared, attributes, message):
    directive = f"""<asyncjobs:schedule name="s" site="/plone"
        handler="plone.app.asyncjobs.tests.jobs.add" {attributes} />"""
    if message is None:
        load(directive)  # a user folder without a user is ignored
        assert declared["s"].job_factory.user_id is None
        return
    with pytest.raises(ConfigurationError, match=message):
        load(directive)


def test_two_schedules_of_one_name_conflict(declared):
    one = """<asyncjobs:schedule name="s" site="/plone" interval="5"
        handler="plone.app.asyncjobs.tests.jobs.add" />"""
    with pytest.raises(ConfigurationError, match="Conflicting"):
        load(one + one)


def _run_first_slot(portal, schedule):
    db = portal._p_jar.db()
    assert install_declared(db, {schedule.name: schedule}) == 1
    transaction.begin()
    record = engine_schedules.get_record(portal._p_jar, schedule.name)
    wait_until(lambda: record.last_runs(), seconds=20, sync=transaction.begin)
    [(_, job, note)] = record.last_runs()[-1:]
    return wait_for_result(job, commit=False)


def test_a_slot_runs_in_the_site_as_the_declared_user(portal, declared):
    schedule = zcml.make_schedule("who", jobs.describe, "/plone", interval=0.5,
                                  user=TEST_USER_ID)
    result = _run_first_slot(portal, schedule)
    assert result["site"] == "/plone" and result["path"] == "/plone"
    assert result["user"] == TEST_USER_ID and result["anonymous"] is False


def test_a_slot_without_a_declared_user_runs_as_anonymous(portal, declared):
    schedule = zcml.make_schedule("anon", jobs.describe, "/plone", interval=0.5)
    result = _run_first_slot(portal, schedule)
    assert result["anonymous"] is True


def _installed(portal, name, **user):
    schedule = zcml.make_schedule(name, jobs.describe, "/plone", interval=86400, **user)
    return engine_schedules.install(portal._p_jar, schedule)


def test_run_now_runs_as_the_schedules_user_for_those_who_hold_its_roles(portal):
    setRoles(portal, TEST_USER_ID, ["Manager"])  # Manage workers: the only site
    record = _installed(portal, "mine", user=TEST_USER_ID)
    job = console.run_now(jobs_api.get_queues(portal), record, portal, TEST_USER_ID)
    assert record.last_runs()[0][1:] == (job, f"run now by {TEST_USER_ID}")
    result = wait_for_result(job)
    assert result["user"] == TEST_USER_ID and result["site"] == "/plone"


def test_run_now_never_lends_the_schedules_user_more_rights(portal):
    """A Manager of the site may not run a schedule that runs as the Zope
    root's Manager: the job would have rights on the root they lack."""
    setRoles(portal, TEST_USER_ID, ["Manager"])
    record = _installed(portal, "root's", user=SITE_OWNER_NAME, user_folder="/acl_users")
    with pytest.raises(access.RunAsRefused, match="Manager"):
        console.run_now(jobs_api.get_queues(portal), record, portal, TEST_USER_ID)
    assert record.last_runs() == []


def test_resume_never_lends_the_schedules_user_more_rights(portal):
    """Resuming makes the schedule's next jobs run as its user: refused, as
    "run now" is, to a Manager of the site when that user is the Zope
    root's Manager; the schedule stays paused.  Pausing lends no rights."""
    setRoles(portal, TEST_USER_ID, ["Manager"])
    record = _installed(portal, "root's", user=SITE_OWNER_NAME, user_folder="/acl_users")
    console.pause(record, portal, TEST_USER_ID)
    with pytest.raises(access.RunAsRefused, match="Manager"):
        console.resume(record, portal, TEST_USER_ID)
    assert record.paused is True and console.describe(record)["next run"] is None
    mine = _installed(portal, "mine", user=TEST_USER_ID)
    console.pause(mine, portal, TEST_USER_ID)
    console.resume(mine, portal, TEST_USER_ID)
    assert mine.paused is False


def test_pause_resume_and_run_need_manage_workers(portal):
    record = _installed(portal, "mine", user=TEST_USER_ID)
    queues = jobs_api.get_queues(portal)
    for action in (lambda: console.pause(record, portal, TEST_USER_ID),
                   lambda: console.resume(record, portal, TEST_USER_ID),
                   lambda: console.run_now(queues, record, portal, TEST_USER_ID)):
        with pytest.raises(access.ScopeRefused):
            action()
    setRoles(portal, TEST_USER_ID, ["Manager"])
    console.pause(record, portal, TEST_USER_ID)
    assert console.describe(record)["paused"] is True
    assert console.describe(record)["next run"] is None
    console.resume(record, portal, TEST_USER_ID)
    assert console.describe(record)["next run"] is not None


def test_the_console_page_lists_runs_and_pauses_and_runs_now(functional, functional_portal):
    record = _installed(functional_portal, "console", user=SITE_OWNER_NAME,
                        user_folder="/acl_users")
    transaction.commit()
    browser = open_browser(functional)
    browser.open(f"{functional_portal.absolute_url()}/@@asyncjobs-controlpanel")
    browser.getLink(id="asyncjobs-schedules-link").click()  # the overview links to it
    [row] = tree(browser).cssselect("#asyncjobs-schedules tbody tr")
    assert row.get("data-schedule") == "console" and "admin" in row.text_content()
    browser.getControl(name="form.buttons.run").click()
    [message] = status_messages(browser)
    assert message.startswith("Schedule console was queued now as job ")
    transaction.begin()
    [(_, job, note)] = record.last_runs()
    assert note == f"run now by {SITE_OWNER_NAME}"
    assert wait_for_result(job, commit=False)["user"] == SITE_OWNER_NAME
    [link] = tree(browser).cssselect("#asyncjobs-schedules tbody tr a[href*='asyncjobs-job']")
    assert link.get("href").endswith(f"id={console.job_id(job)}")
    browser.getControl(name="form.buttons.pause").click()
    assert "paused" in tree(browser).cssselect("#asyncjobs-schedules tbody tr")[0].text_content()
    transaction.begin()
    assert record.paused
