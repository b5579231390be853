"""Acceptance of the job control panel in a real headless Chromium, against
the functional layer's Plone (WSGI server) and its running dispatcher.

Each test logs in as a manager through Plone's login form, works the
panel with the mouse and keyboard as an administrator would, and checks
both what the page shows and what the database and the dispatcher hold.
The browser is synchronised with Playwright's auto-waiting ``expect``, the
database with :func:`wait_until` (``transaction.begin()`` before each
look); there are no fixed sleeps.  Jobs that block on a gate are released
when the test ends, whatever happened, so that the layer's dispatcher
stops.

Screenshots (``artifacts/screenshots/``): ``controlpanel-overview`` (the
overview with a completed, a failed, a pending and a running job) and
``job-detail`` (a running job's page halfway through).
"""
import re
import uuid
from datetime import timedelta

import pytest
import transaction
from plone import api
from plone.app.testing import SITE_OWNER_NAME
from plone.app.testing import SITE_OWNER_PASSWORD
from plone.app.testing import TEST_USER_ID
from plone.app.testing import setRoles
from playwright.sync_api import expect

from plone.app.asyncjobs import api as jobs_api
from plone.app.asyncjobs import inspection
from plone.app.asyncjobs.access import DATABASE
from plone.app.asyncjobs.browser.tests import login
from plone.app.asyncjobs.browser.tests import screenshot
from plone.app.asyncjobs.engine import listing
from plone.app.asyncjobs.engine.failure import is_failure
from plone.app.asyncjobs.engine.testing.waiting import wait_for_annotation
from plone.app.asyncjobs.engine.testing.waiting import wait_for_poll
from plone.app.asyncjobs.engine.testing.waiting import wait_until
from plone.app.asyncjobs.testing import wait_for_result
from plone.app.asyncjobs.tests import jobs


#: Milliseconds a live update may take to show: the script polls every
#: two seconds, the dispatcher every 0.05 s.
LIVE = 15_000
#: Steps of :func:`jobs.report_in_steps` in these tests.
STEPS = 4
LATER = timedelta(hours=1)


def job_id(job):
    return inspection.job_id(job)


def queue_of(job):
    return jobs_api.get_queues()[job.queue.name]


def status_message(page):
    """The locator of Plone's status messages."""
    return page.locator(".portalMessage")


@pytest.fixture
def gates(functional):
    """Make gate keys for :func:`jobs.report_and_wait` and
    :func:`jobs.report_in_steps`; every gate is opened when the test ends
    (this fixture ends before the layer stops its dispatcher)."""
    keys = []

    def new_key():
        key = uuid.uuid4().hex
        keys.append(key)
        return key

    yield new_key
    for key in keys:
        jobs.gate(key).set()
        jobs.open_step_gates(key, STEPS)


@pytest.fixture
def dispatcher(functional):
    """The layer's running dispatcher, once it registered in the default
    queue and sized its pool of agent ``main``."""
    dispatcher = functional["asyncjobsDispatcher"]
    wait_until(lambda: dispatcher.uuid in jobs_api.get_queues()[""].dispatchers.keys(),
               sync=transaction.begin,
               describe=lambda: f"waiting for {dispatcher!r} to register")
    wait_until(lambda: main_pool(dispatcher) is not None,
               describe=lambda: f"waiting for {dispatcher!r} to start its agent's threads")
    return dispatcher


def main_pool(dispatcher):
    """The worker threads of agent ``main`` of the default queue
    (:class:`.engine.workers.AgentWorkers`), or ``None`` before the first poll."""
    return dispatcher._pools.get(("", "main"))


@pytest.fixture
def manager(page):
    """The page, logged in as the site owner (the Zope root's Manager)."""
    login(page, SITE_OWNER_NAME, SITE_OWNER_PASSWORD)
    return page


# -- 1. the overview, reached from Site Setup ----------------------------------------------


def test_site_setup_leads_to_the_overview_with_the_running_dispatcher(
        manager, functional_portal, portal_url, dispatcher, gates):
    page = manager
    portal = functional_portal
    wait_for_result(jobs_api.queue_job(jobs.add, portal, 1, 2))
    wait_for_result(jobs_api.queue_job(jobs.fail, portal, "for the screenshot"))
    jobs_api.queue_job(jobs.add, portal, 3, delay=LATER)
    running = jobs_api.queue_job(jobs.report_and_wait, portal, gates())
    transaction.commit()
    wait_for_annotation(running, "progress")

    page.goto("@@overview-controlpanel")
    # The tile's accessible name is its icon's and its title's.
    tile = page.get_by_role("link", name="Asynchronous jobs")
    expect(tile).to_have_attribute("href", f"{portal_url}/@@asyncjobs-controlpanel")
    tile.click()
    expect(page).to_have_url(f"{portal_url}/@@asyncjobs-controlpanel")
    overview = page.locator("#asyncjobs-overview")
    expect(overview).to_be_visible()
    expect(page.get_by_role("heading", level=1)).to_have_text("Asynchronous jobs")
    expect(page.locator("#asyncjobs-nav a.nav-link.active")).to_have_text("Overview")

    card = page.locator(f'[data-dispatcher="{dispatcher.uuid}"]')
    expect(card).to_have_attribute("data-dispatcher-state", "alive")
    expect(card).to_have_attribute("data-dispatcher-paused", "false")
    expect(card.locator(".card-header .badge")).to_have_text("alive")
    expect(card.locator(".card-header .badge")).to_have_class(re.compile(r"\btext-bg-success\b"))
    expect(card.locator('tr[data-agent="main"]')).to_have_attribute("data-agent-size", "3")
    expect(card.locator(f'a[data-agent-job="{job_id(running)}"]')).to_be_visible()

    counts = page.locator('#asyncjobs-queues tr[data-queue=""]')
    for state, count in (("pending", "1"), ("active", "1"), ("completed", "1"),
                         ("failed", "1")):
        expect(counts.locator(f'[data-count="{state}"]')).to_have_text(count)
    row = page.locator(f'#asyncjobs-running tr[data-job-id="{job_id(running)}"]')
    expect(row.locator('[role="progressbar"]')).to_have_attribute("aria-valuenow", "30")
    expect(overview).to_have_attribute("data-asyncjobs-polling", "on")
    screenshot(page, "controlpanel-overview")


# -- 2. a job's progress, live --------------------------------------------------------------


def test_a_running_jobs_progress_shows_live_without_reloading(
        manager, functional_portal, gates):
    page = manager
    key = gates()
    job = jobs_api.queue_job(jobs.report_in_steps, functional_portal, key, STEPS)
    transaction.commit()
    wait_for_annotation(job, "progress")
    id_ = job_id(job)

    page.goto(f"@@asyncjobs-job?id={id_}")
    root = page.locator("#asyncjobs-job")
    bar = root.locator('[data-job-field="progress"] [role="progressbar"]')
    message = root.locator('[data-job-field="progress-message"]')
    badge = root.locator('header [data-job-field="status"]')
    expect(root).to_have_attribute("data-job-id", id_)
    expect(root).to_have_attribute("data-job-status", "active")
    expect(badge).to_have_text("active")
    expect(bar).to_have_attribute("aria-valuenow", "0")
    expect(root).to_have_attribute("data-asyncjobs-polling", "on")

    # The overview's list of running jobs, in a second tab, follows too.
    overview = page.context.new_page()
    overview.goto("@@asyncjobs-controlpanel")
    row = overview.locator(f'#asyncjobs-running tr[data-job-id="{id_}"]')
    row_bar = row.locator('[role="progressbar"]')
    expect(row_bar).to_have_attribute("aria-valuenow", "0")

    # A page that reloads or navigates loses this mark.
    for tab in (page, overview):
        tab.evaluate("window.asyncjobsTestMark = 'the same document'")
    navigations = []
    for tab in (page, overview):
        tab.on("framenavigated", lambda frame: navigations.append(frame.url))

    for step in range(1, STEPS):
        jobs.step_gate(key, step).set()
        percent = str(100 * step // STEPS)
        expect(bar).to_have_attribute("aria-valuenow", percent, timeout=LIVE)
        expect(bar).to_have_text(f"{percent}%")
        expect(message).to_have_text(f"step {step} of {STEPS}")
        expect(row_bar).to_have_attribute("aria-valuenow", percent, timeout=LIVE)
        if step == 2:
            screenshot(page, "job-detail")
    expect(badge).to_have_text("active")
    expect(root.locator('[data-job-field="finished-notice"]')).to_be_hidden()

    jobs.step_gate(key, STEPS).set()
    expect(root).to_have_attribute("data-job-status", "completed", timeout=LIVE)
    expect(badge).to_have_text("succeeded")
    expect(badge).to_have_class(re.compile(r"\btext-bg-success\b"))
    expect(root.locator('[data-job-field="finished-notice"]')).to_be_visible()
    expect(root.locator('[data-job-field="ended"]')).to_have_text(re.compile(r" UTC$"))
    expect(root).to_have_attribute("data-asyncjobs-polling", "off")
    expect(row).to_have_attribute("data-job-status", "completed", timeout=LIVE)
    expect(row.locator('[data-job-field="status"]')).to_have_text("succeeded")

    for tab in (page, overview):
        assert tab.evaluate("window.asyncjobsTestMark") == "the same document", tab.url
    assert navigations == []
    transaction.begin()
    assert job.result == STEPS


# -- 3. retry a failed job ------------------------------------------------------------------


def test_retry_a_failed_job_and_see_the_retry_complete(
        manager, functional_portal, portal_url):
    page = manager
    job = jobs_api.queue_job(jobs.fail_first_call, functional_portal, uuid.uuid4().hex)
    assert is_failure(wait_for_result(job))
    id_ = job_id(job)

    page.goto("@@asyncjobs-controlpanel")
    page.locator('#asyncjobs-nav a[data-list="failed"]').click()
    expect(page.locator("#asyncjobs-joblist")).to_be_visible()
    row = page.locator(f'#asyncjobs-jobs tr[data-job-id="{id_}"]')
    expect(row).to_have_attribute("data-job-state", "failed")
    expect(row.locator('[data-job-field="status"]')).to_have_text("failed")
    row.get_by_role("link", name=id_, exact=True).click()

    root = page.locator("#asyncjobs-job")
    expect(root).to_have_attribute("data-job-id", id_)
    expect(page.locator("#asyncjobs-traceback")).to_contain_text("ValueError: first call for")
    page.locator('a[data-action="retry"]').click()

    expect(page.locator("#asyncjobs-confirm h1")).to_have_text(f"Retry job {id_}?")
    expect(page.locator(f'#asyncjobs-confirm-job tr[data-job-id="{id_}"]')).to_be_visible()
    page.locator('#asyncjobs-confirm-form button[name="form.buttons.retry"]').click()

    expect(status_message(page)).to_contain_text(f"Job {id_} was queued again as job ")
    new_id = re.search(r"queued again as job (\d+)\.", status_message(page).inner_text())[1]
    assert new_id != id_
    expect(page).to_have_url(f"{portal_url}/@@asyncjobs-job?id={new_id}")
    expect(root).to_have_attribute("data-job-id", new_id)
    # Pending or running when the page was made, it completes here (the
    # script updates the badge); done already, the page says so at once.
    expect(root).to_have_attribute("data-job-status", "completed", timeout=LIVE)
    expect(root.locator('header [data-job-field="status"]')).to_have_text("succeeded")

    # The two jobs link to each other: back to the failed one, forward again.
    page.locator("#asyncjobs-job-retry-of").click()
    expect(root).to_have_attribute("data-job-id", id_)
    expect(root).to_have_attribute("data-job-state", "failed")
    page.locator(f'#asyncjobs-job-retried-as a[data-retry="{new_id}"]').click()
    expect(root).to_have_attribute("data-job-id", new_id)
    expect(root).to_have_attribute("data-job-state", "completed")
    result = page.locator('[aria-labelledby="asyncjobs-result-heading"] [data-job-field="result"]')
    expect(result).to_have_text("2")  # the second call
    expect(page.locator("#asyncjobs-traceback")).to_have_count(0)

    transaction.begin()
    new = inspection.get_job(jobs_api.get_queues(), new_id, DATABASE)
    assert new.result == 2
    assert inspection.describe(job, detail=True)["retried_as"] == [new_id]


# -- 4. cancel a pending job ----------------------------------------------------------------


def test_cancel_a_pending_job_as_a_site_administrator(page, functional_portal, portal_url):
    # Only a Manager may give roles other than Member.
    setRoles(functional_portal, TEST_USER_ID, ["Manager"])
    api.user.create(email="siteadmin@example.org", username="siteadmin",
                    password="secret-password-1", roles=("Site Administrator",))
    setRoles(functional_portal, TEST_USER_ID, ["Member"])
    job = jobs_api.queue_job(jobs.add, functional_portal, 1, 2, delay=LATER)
    transaction.commit()
    id_ = job_id(job)
    login(page, "siteadmin", "secret-password-1")

    page.goto("@@asyncjobs-controlpanel")
    pending_count = page.locator('#asyncjobs-queues tr[data-queue=""] [data-count="pending"]')
    expect(pending_count).to_have_text("1")
    page.locator('#asyncjobs-nav a[data-list="pending"]').click()
    row = page.locator(f'#asyncjobs-jobs tr[data-job-id="{id_}"]')
    expect(row).to_have_attribute("data-job-status", "pending")
    row.get_by_role("link", name=id_, exact=True).click()

    root = page.locator("#asyncjobs-job")
    expect(root).to_have_attribute("data-job-status", "pending")
    page.locator('a[data-action="cancel"]').click()
    expect(page.locator("#asyncjobs-confirm h1")).to_have_text(f"Cancel job {id_}?")
    page.locator('#asyncjobs-confirm-form button[name="form.buttons.cancel"]').click()

    expect(page).to_have_url(f"{portal_url}/@@asyncjobs-job?id={id_}")
    expect(status_message(page)).to_contain_text(f"Job {id_} was cancelled.")
    expect(root).to_have_attribute("data-job-status", "completed")
    expect(root).to_have_attribute("data-job-state", "failed")
    badge = root.locator('header [data-job-field="status"]')
    expect(badge).to_have_text("cancelled")
    expect(badge).to_have_class(re.compile(r"\btext-bg-warning\b"))
    # The reason, not a failure with its traceback.
    expect(root.locator('#asyncjobs-cancelled [data-job-field="cancel-reason"]')
           ).to_have_text("cancelled by siteadmin")
    expect(page.locator("#asyncjobs-traceback")).to_have_count(0)
    expect(page.locator("#asyncjobs-traceback-hidden")).to_have_count(0)
    expect(page.locator('a[data-action="cancel"]')).to_have_count(0)

    page.locator('#asyncjobs-nav a[data-list="pending"]').click()
    expect(page.locator("#asyncjobs-joblist")).to_be_visible()
    expect(page.locator(f'[data-job-id="{id_}"]')).to_have_count(0)
    page.locator('#asyncjobs-nav a[data-list="failed"]').click()
    expect(page.locator(f'#asyncjobs-jobs tr[data-job-id="{id_}"]')).to_be_visible()
    page.get_by_role("link", name="Overview", exact=True).click()
    expect(pending_count).to_have_text("0")
    expect(page.locator('#asyncjobs-queues tr[data-queue=""] [data-count="failed"]')
           ).to_have_text("1")

    transaction.begin()
    assert job.status == "completed"
    assert listing.list_of(job) == "failed"
    assert inspection.describe(job)["cancel_reason"] == "cancelled by siteadmin"
    queue = queue_of(job)
    assert job not in list(queue)
    assert listing.count_jobs(queue)["pending"] == 0


# -- 5. resize an agent; the running dispatcher follows -----------------------------------


def test_resize_an_agent_and_the_dispatcher_follows(
        manager, functional_portal, portal_url, dispatcher, gates):
    page = manager
    pool = main_pool(dispatcher)
    assert pool.size == 3
    uuid_ = str(dispatcher.uuid)

    page.goto("@@asyncjobs-controlpanel")
    agent = page.locator(f'[data-dispatcher="{uuid_}"] tr[data-agent="main"][data-agent-queue=""]')
    expect(agent).to_have_attribute("data-agent-size", "3")
    form = agent.locator('form[data-action="resize"]')
    form.get_by_label("Size of agent main").fill("1")
    form.get_by_role("button", name="Change size…").click()

    expect(page.locator("#asyncjobs-confirm h1")).to_have_text(
        "Change the size of agent main?")
    expect(page.locator("#asyncjobs-confirm .lead")).to_contain_text(
        "will have size 1: the most jobs it runs at a time")
    page.locator('#asyncjobs-confirm-form button[name="form.buttons.resize"]').click()

    expect(page).to_have_url(f"{portal_url}/@@asyncjobs-controlpanel")
    expect(status_message(page)).to_contain_text(
        f"Agent main of dispatcher {uuid_} now has size 1")
    expect(agent).to_have_attribute("data-agent-size", "1")
    expect(agent.locator('input[name="size"]')).to_have_value("1")

    transaction.begin()
    assert jobs_api.get_queues()[""].dispatchers[dispatcher.uuid]["main"].size == 1
    # At its next poll the dispatcher sizes its pool down; the extra
    # threads end once idle.
    wait_until(lambda: pool.size == 1 and len(pool.alive()) == 1,
               describe=lambda: f"pool of size {pool.size} with {len(pool.alive())} threads")
    wait_until(lambda: dispatcher.polls[-1][""]["main"]["size"] == 1)

    # One thread: of two jobs that block, one runs, the other waits.
    keys = [gates(), gates()]
    queued = [jobs_api.queue_job(jobs.report_and_wait, functional_portal, key)
              for key in keys]
    transaction.commit()
    started = wait_until(
        lambda: [job for job in queued if "progress" in job.annotations],
        sync=transaction.begin, describe=lambda: f"{queued} did not start")
    [first] = started
    [second] = [job for job in queued if job is not first]
    wait_for_poll(dispatcher, count=5)
    transaction.begin()
    assert second.status == "pending" and "progress" not in second.annotations
    assert [job.status for job in started] == ["active"]

    page.reload()
    running_rows = page.locator("#asyncjobs-running tbody tr")
    expect(running_rows).to_have_count(1)
    expect(running_rows).to_have_attribute("data-job-id", job_id(first))
    counts = page.locator('#asyncjobs-queues tr[data-queue=""]')
    expect(counts.locator('[data-count="pending"]')).to_have_text("1")
    expect(counts.locator('[data-count="active"]')).to_have_text("1")
    expect(agent.locator("a[data-agent-job]")).to_have_count(1)

    # Released, the first makes room for the second.
    jobs.gate(keys[queued.index(first)]).set()
    assert wait_for_result(first, commit=False) == 3
    wait_for_annotation(second, "progress")
    transaction.begin()
    assert first.active_end <= second.active_start
    jobs.gate(keys[queued.index(second)]).set()
    assert wait_for_result(second, commit=False) == 3


# -- 6. two sites, one database: a site's administrator sees that site's jobs only ------------


def test_a_site_administrator_of_another_site_does_not_see_this_sites_jobs(
        page, functional, functional_portal, portal_url):
    from plone.testing import zope as zope_testing
    from Products.CMFPlone.factory import addPloneSite
    from zope.component.hooks import setSite

    app = functional["app"]
    addPloneSite(app, "other", title="Other site", default_language="en",
                 extension_ids=("plone.app.asyncjobs:default",))
    other = app["other"]
    other.acl_users.userFolderAddUser("otheradmin", "secret-otheradmin-1",
                                      ["Member", "Site Administrator"], [])
    setSite(functional_portal)
    plone_job = jobs_api.queue_job(jobs.add, functional_portal, 1, 2, delay=LATER)
    setSite(other)
    zope_testing.login(app.acl_users, SITE_OWNER_NAME)
    other_job = jobs_api.queue_job(jobs.add, other, 3, 4, delay=LATER)
    zope_testing.logout()
    setSite(functional_portal)
    transaction.commit()
    other_url = portal_url.rsplit("/", 1)[0] + "/other"

    page.goto(f"{other_url}/login")
    page.fill("#__ac_name", "otheradmin")
    page.fill("#__ac_password", "secret-otheradmin-1")
    with page.expect_navigation(wait_until="load"):
        page.click("[name='buttons.login']")
    page.goto(f"{other_url}/@@asyncjobs-controlpanel")
    expect(page.locator("#asyncjobs-scope")).to_have_attribute("data-scope", "site")
    expect(page.locator('#asyncjobs-queues tr[data-queue=""] [data-count="pending"]')
           ).to_have_text("1")
    # The shared worker shows read-only: no pause, resize or purge forms.
    expect(page.locator("form[data-action]")).to_have_count(0)
    page.locator('#asyncjobs-nav a[data-list="pending"]').click()
    expect(page.locator(f'#asyncjobs-jobs tr[data-job-id="{job_id(other_job)}"]')).to_be_visible()
    expect(page.locator(f'[data-job-id="{job_id(plone_job)}"]')).to_have_count(0)
    page.goto(f"{other_url}/@@asyncjobs-job?id={job_id(plone_job)}")
    expect(page.locator("#asyncjobs-job-missing")).to_be_visible()
    screenshot(page, "other-site-cannot-see-job")
