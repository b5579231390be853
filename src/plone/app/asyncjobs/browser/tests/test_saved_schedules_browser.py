"""Saving a schedule on the Recurring jobs page, as a Site Administrator,
in a real headless Chromium against the functional layer's Plone: a bad
field shows the form again with its error; a saved schedule is listed as
running as the user who saved it, a worker runs its slots, and a run links
to its job.

Screenshots (``artifacts/screenshots/schedules/``): ``form-error``,
``saved-and-run``, ``editing``.
"""
import pytest
import transaction
from plone.app.testing import TEST_USER_ID
from plone.app.testing import TEST_USER_NAME
from plone.app.testing import TEST_USER_PASSWORD
from plone.app.testing import setRoles
from playwright.sync_api import expect

from plone.app.asyncjobs.browser.tests import login
from plone.app.asyncjobs.browser.tests import screenshot
from plone.app.asyncjobs.engine import schedules as engine_schedules
from plone.app.asyncjobs.engine.testing.waiting import wait_until
from plone.app.asyncjobs.schedules import schedulables
from plone.app.asyncjobs.testing import wait_for_result


#: Milliseconds a page may take to show what a worker did.
LIVE = 20_000


@pytest.fixture
def site_admin(page, functional_portal, monkeypatch):
    monkeypatch.setattr(schedulables, "SCHEDULABLES", {"describe": schedulables.Schedulable(
        "describe", "plone.app.asyncjobs.tests.jobs:describe", "Where am I")})
    setRoles(functional_portal, TEST_USER_ID, ["Member", "Site Administrator"])
    transaction.commit()
    login(page, TEST_USER_NAME, TEST_USER_PASSWORD)
    return page


def test_a_site_administrator_saves_a_schedule_that_runs_as_them(site_admin,
                                                                 functional_portal):
    page = site_admin
    page.goto("@@asyncjobs-schedules")
    page.fill("#saved-name", "where")
    page.select_option("#saved-schedulable", label="Where am I")
    page.fill("#saved-interval", "1")
    page.fill("#saved-arguments", "[1, 2]")
    page.click("[name='form.buttons.save']")
    expect(page.locator("#asyncjobs-schedule-error")).to_contain_text(
        "arguments: must be a JSON object")
    expect(page.locator("#saved-name")).to_have_value("where")
    screenshot(page, "schedules/form-error")

    page.fill("#saved-arguments", "{}")
    page.click("[name='form.buttons.save']")
    expect(page.locator(".portalMessage")).to_contain_text(
        "Schedule where@plone was saved; it runs as you.")
    row = page.locator('#asyncjobs-schedules tr[data-schedule="where@plone"]')
    expect(row).to_contain_text(TEST_USER_ID)

    transaction.begin()
    record = engine_schedules.get_record(functional_portal._p_jar, "where@plone")
    wait_until(lambda: record.last_runs(), seconds=30, sync=transaction.begin)
    [(_, job, _)] = record.last_runs()[-1:]
    assert wait_for_result(job, commit=False)["user"] == TEST_USER_ID
    page.reload()
    link = row.locator("a[href*='asyncjobs-job']").last
    expect(link).to_be_visible(timeout=LIVE)
    screenshot(page, "schedules/saved-and-run")

    row.locator("a.asyncjobs-edit-schedule").click()
    expect(page.locator("#asyncjobs-schedule-form-heading")).to_contain_text("where")
    expect(page.locator("#saved-interval")).to_have_value("1")
    screenshot(page, "schedules/editing")
    page.goto("@@asyncjobs-schedules")
    row.locator("[name='form.buttons.delete']").click()
    expect(page.locator(".portalMessage")).to_contain_text("Schedule where@plone was deleted.")
    expect(page.locator('#asyncjobs-schedules tr[data-schedule="where@plone"]')).to_have_count(0)
