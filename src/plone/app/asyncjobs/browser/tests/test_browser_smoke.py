"""Smoke tests in a real headless Chromium against the functional layer's
Plone (WSGI server) with a running dispatcher."""
import time

import transaction
from plone import api
from plone.app.testing import SITE_OWNER_NAME
from plone.app.testing import SITE_OWNER_PASSWORD
from plone.app.testing import TEST_USER_ID
from plone.app.testing import TEST_USER_NAME
from plone.app.testing import TEST_USER_PASSWORD
from plone.app.testing import setRoles

from plone.app.asyncjobs import api as jobs_api
from plone.app.asyncjobs.browser.tests import login
from plone.app.asyncjobs.browser.tests import screenshot
from plone.app.asyncjobs.tests import jobs


def test_site_setup_as_site_owner(page, portal_url):
    login(page, SITE_OWNER_NAME, SITE_OWNER_PASSWORD)
    response = page.goto("@@overview-controlpanel")
    assert response.status == 200
    assert page.url == f"{portal_url}/@@overview-controlpanel"
    # Views of the portal itself have the site's title as page title.
    assert page.title() == "Plone site"
    assert page.get_by_role("heading", level=1).inner_text().strip() == "Site Setup"
    assert page.get_by_role("link", name="Add-ons").is_visible()
    path = screenshot(page, "site-setup")
    assert path.stat().st_size > 0


def test_the_browser_sees_what_a_queued_job_did(page, functional_portal, portal_url):
    portal = functional_portal
    setRoles(portal, TEST_USER_ID, ["Manager"])
    doc = api.content.create(container=portal, type="Document", id="doc", title="Before")
    job = jobs_api.queue_job(jobs.set_title, doc, "Set by a job")
    transaction.commit()  # the worker and the browser see only what is committed

    login(page, TEST_USER_NAME, TEST_USER_PASSWORD)
    heading = page.get_by_role("heading", level=1)
    deadline = time.monotonic() + 10
    while True:
        assert page.goto("doc").status == 200
        if heading.inner_text().strip() == "Set by a job" or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert heading.inner_text().strip() == "Set by a job"
    assert page.title() == "Set by a job — Plone site"
    screenshot(page, "document-after-job")
    transaction.begin()
    assert job.result == "Set by a job"
