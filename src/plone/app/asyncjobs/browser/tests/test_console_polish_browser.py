"""The job control panel as a site administrator reads it (issue 14 item 4),
in a real headless Chromium against the functional layer's Plone.

What each test checks: the engine's own jobs stay out of sight; a cancelled
job reads as cancelled, with its reason; Retry is offered for every
finished job the API would retry, and "Retried as" names every retry; long
arguments are shown once, shortened; empty facts keep their row; counts
read naturally and each page names itself in the tab title; the tables fit
a phone's screen (390 px wide); the demo page links to the jobs.

Screenshots (``artifacts/screenshots/console/``): ``job-cancelled``,
``job-retried-twice``, ``job-long-arguments``, ``phone-overview``,
``phone-completed``, ``phone-job`` (390 px wide) and ``demo-linked``.
"""
import re
from datetime import timedelta

import pytest
import transaction
from plone.app.testing import SITE_OWNER_NAME
from plone.app.testing import SITE_OWNER_PASSWORD
from playwright.sync_api import expect

from plone.app.asyncjobs import api as jobs_api
from plone.app.asyncjobs import inspection
from plone.app.asyncjobs.browser import demo
from plone.app.asyncjobs.browser.tests import login
from plone.app.asyncjobs.browser.tests import screenshot
from plone.app.asyncjobs.engine.testing.waiting import wait_until
from plone.app.asyncjobs.testing import wait_for_all_jobs
from plone.app.asyncjobs.testing import wait_for_result
from plone.app.asyncjobs.tests import jobs


LATER = timedelta(hours=1)
#: Milliseconds a page may take to show what a worker did.
LIVE = 15_000
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def manager(page):
    login(page, SITE_OWNER_NAME, SITE_OWNER_PASSWORD)
    return page


def job_id(job):
    return inspection.job_id(job)


def fits_across(page):
    """Whether nothing of the page, and of no table of it, needs a
    horizontal scroll bar: ``[]`` or what does not fit."""
    return page.evaluate("""() => {
        const wide = [];
        const root = document.documentElement;
        if (root.scrollWidth > root.clientWidth) {
            wide.push(`page ${root.scrollWidth} > ${root.clientWidth}`);
        }
        for (const table of document.querySelectorAll("table")) {
            const box = table.parentElement;
            if (table.scrollWidth > box.clientWidth
                    || table.getBoundingClientRect().right > root.clientWidth) {
                wide.push(`${table.id || table.className} ${table.scrollWidth} > ${box.clientWidth}`);
            }
        }
        return wide;
    }""")


# -- plumbing, cancelled jobs, retry ------------------------------------------------------


def test_a_cancelled_job_reads_as_cancelled_and_plumbing_stays_hidden(
        manager, functional_portal):
    page = manager
    job = jobs_api.queue_job(jobs.add, functional_portal, 1, delay=LATER)
    transaction.commit()
    id_ = job_id(job)
    page.goto(f"@@asyncjobs-job?id={id_}&scope=database")
    page.locator('a[data-action="cancel"]').click()
    page.locator('#asyncjobs-confirm-form button[name="form.buttons.cancel"]').click()
    root = page.locator("#asyncjobs-job")
    expect(root).to_have_attribute("data-job-status", "completed", timeout=LIVE)

    # Wait for the job that resumed its callbacks (the engine's own).
    wait_until(lambda: job.status == "completed" and job.callbacks[0].status == "completed",
               sync=transaction.begin)
    wait_for_all_jobs()
    page.reload()
    badge = root.locator('header [data-job-field="status"]')
    expect(badge).to_have_text("cancelled")
    expect(badge).to_have_class(re.compile(r"\btext-bg-warning\b"))
    expect(page.locator('#asyncjobs-cancelled [data-job-field="cancel-reason"]')
           ).to_have_text(f"cancelled by {SITE_OWNER_NAME}")
    # A Manager sees tracebacks, but a cancel has none worth showing.
    expect(page.locator("#asyncjobs-traceback")).to_have_count(0)
    expect(page.locator("#asyncjobs-result-heading")).to_have_count(0)
    # The callback that notifies the outcome event is the service's own.
    expect(page.locator("#asyncjobs-callbacks")).to_have_count(0)
    expect(page.locator('a[data-action="retry"]')).to_be_visible()
    assert page.title() == f"Job {id_} — Plone site"
    screenshot(page, "console/job-cancelled")

    # Every site's jobs: the cancelled one only, in the counts and the lists.
    page.goto("@@asyncjobs-controlpanel?scope=database")
    counts = page.locator('#asyncjobs-queues tr[data-queue=""]')
    for state, count in (("pending", "0"), ("active", "0"), ("completed", "0"),
                         ("failed", "1")):
        expect(counts.locator(f'[data-count="{state}"]')).to_have_text(count)
    for state in inspection.STATES:
        page.goto(f"@@asyncjobs-jobs?state={state}&scope=database")
        rows = page.locator("#asyncjobs-jobs tbody tr")
        expect(rows).to_have_count(1 if state == "failed" else 0)
    row = page.locator(f'#asyncjobs-jobs tr[data-job-id="{id_}"]')
    expect(row.locator('[data-job-field="status"]')).to_have_text("cancelled")
    expect(row.locator('[data-job-field="cancel-reason"]')).to_have_text(
        f"cancelled by {SITE_OWNER_NAME}")


def test_a_succeeded_job_can_be_retried_and_every_retry_is_listed(
        manager, functional_portal, portal_url):
    page = manager
    job = jobs_api.queue_job(jobs.add, functional_portal, 40, 2)
    wait_for_result(job)
    id_ = job_id(job)
    new_ids = []
    for _ in range(2):
        page.goto(f"@@asyncjobs-job?id={id_}")
        page.locator('a[data-action="retry"]').click()
        page.locator('#asyncjobs-confirm-form button[name="form.buttons.retry"]').click()
        expect(page).to_have_url(re.compile(r"asyncjobs-job\?id=\d+$"))
        new_ids.append(page.url.rsplit("=", 1)[1])
    assert new_ids[0] != new_ids[1] != id_

    page.goto(f"@@asyncjobs-job?id={id_}")
    links = page.locator("#asyncjobs-job-retried-as a")
    expect(links).to_have_count(2)
    assert [link.get_attribute("data-retry") for link in links.all()] == new_ids
    expect(links.nth(0)).to_have_text(f"job {new_ids[0]}")
    screenshot(page, "console/job-retried-twice")
    links.nth(1).click()
    expect(page).to_have_url(f"{portal_url}/@@asyncjobs-job?id={new_ids[1]}")
    expect(page.locator("#asyncjobs-job-retry-of")).to_have_text(f"job {id_}")


# -- reading a job's page -----------------------------------------------------------------


def test_long_arguments_show_once_and_empty_facts_keep_their_row(manager, functional_portal):
    page = manager
    job = jobs_api.queue_job(jobs.add, functional_portal, "x" * 3000, b="y" * 3000,
                             delay=LATER)
    transaction.commit()
    page.goto(f"@@asyncjobs-job?id={job_id(job)}")
    root = page.locator("#asyncjobs-job")
    expect(root.locator('header [data-job-field="callable"]')).to_have_text(
        "plone.app.asyncjobs.tests.jobs.add")
    text = root.inner_text()
    # Each argument once, cut once.
    assert text.count("x" * 100) == 1 and text.count("y" * 100) == 1
    assert text.count("x" * (inspection.SHORT_LIMIT - 1)) == 1
    assert text.count("x" * (inspection.SHORT_LIMIT + 1)) == 0

    # Not started, not finished: each empty fact still has its own line.
    facts = page.locator("#asyncjobs-job-facts")
    rows = facts.evaluate("""(dl) => [...dl.querySelectorAll(":scope > dt")].map((dt) => {
        const dd = dt.nextElementSibling;
        const a = dt.getBoundingClientRect(), b = dd.getBoundingClientRect();
        return [dt.textContent.trim(), dd.innerText.trim() ||
                getComputedStyle(dd.querySelector("time") || dd, "::before").content,
                b.height > a.height / 2];
    })""")
    # (An empty one was 0 px high, and the next fact moved up into its line.)
    assert all(tall for _, _, tall in rows), rows
    shown = {name: value for name, value, _ in rows}
    assert shown["Started"] == shown["Finished"] == '"—"', shown
    screenshot(page, "console/job-long-arguments")


def test_counts_read_naturally_and_each_page_names_itself(manager, functional_portal):
    page = manager
    job = jobs_api.queue_job(jobs.add, functional_portal, 1, 2)
    wait_for_result(job)
    wait_for_all_jobs()
    page.goto("@@asyncjobs-controlpanel")
    assert page.title() == "Asynchronous jobs — Plone site"
    last_hour = page.locator("#asyncjobs-last-hour")
    expect(last_hour).to_have_text(re.compile(r"^\s*In the last hour:\s+1 job finished,\s+"
                                              r"0 of them failed\.\s*$"))
    expect(last_hour).not_to_contain_text("a minute")
    page.locator('#asyncjobs-nav a[data-list="completed"]').click()
    expect(page.locator("#asyncjobs-joblist")).to_be_visible()
    assert page.title() == "Jobs: Completed — Plone site"
    page.goto("@@asyncjobs-jobs?state=failed")
    assert page.title() == "Jobs: Failed — Plone site"
    page.goto(f"@@asyncjobs-action?action=remove&id={job_id(job)}")
    assert page.title() == f"Remove job {job_id(job)}? — Plone site"
    page.goto("@@asyncjobs-job?id=12345")
    assert page.title() == "No such job — Plone site"


# -- a phone ------------------------------------------------------------------------------


def test_the_tables_fit_a_phone(manager, functional_portal, gates):
    page = manager
    page.set_viewport_size(PHONE)
    done = jobs_api.queue_job(jobs.add, functional_portal, "a" * 400, "b" * 400)
    wait_for_result(done)
    running = jobs_api.queue_job(jobs.report_and_wait, functional_portal, gates())
    jobs_api.queue_job(jobs.add, functional_portal, 3, delay=LATER)
    transaction.commit()
    wait_until(lambda: "progress" in running.annotations, sync=transaction.begin)

    page.goto("@@asyncjobs-controlpanel")
    expect(page.locator(f'#asyncjobs-running tr[data-job-id="{job_id(running)}"]')
           ).to_be_visible()
    assert fits_across(page) == []
    # Each cell says which column it is in.
    cell = page.locator(f'#asyncjobs-running tr[data-job-id="{job_id(running)}"] td').nth(1)
    assert cell.get_attribute("data-label") == "Function"
    assert cell.evaluate("(td) => getComputedStyle(td, '::before').content") == '"Function"'
    screenshot(page, "console/phone-overview")
    page.goto("@@asyncjobs-jobs?state=completed")
    expect(page.locator(f'#asyncjobs-jobs tr[data-job-id="{job_id(done)}"]')).to_be_visible()
    assert fits_across(page) == []
    screenshot(page, "console/phone-completed")
    page.goto(f"@@asyncjobs-job?id={job_id(done)}")
    assert fits_across(page) == []
    screenshot(page, "console/phone-job")

    # The desk keeps its tables.
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto("@@asyncjobs-jobs?state=completed")
    assert page.locator("#asyncjobs-jobs thead").evaluate(
        "(head) => getComputedStyle(head).display") == "table-header-group"


@pytest.fixture
def gates(functional):
    """Gate keys for :func:`jobs.report_and_wait`, all opened at the end."""
    import uuid

    keys = []

    def new_key():
        keys.append(uuid.uuid4().hex)
        return keys[-1]

    yield new_key
    for key in keys:
        jobs.gate(key).set()


# -- the demo page ------------------------------------------------------------------------


def test_the_demo_pages_rows_link_to_the_jobs(manager, functional_portal, monkeypatch,
                                              portal_url):
    page = manager
    monkeypatch.setattr(demo, "COUNT_STEPS", 2)
    monkeypatch.setattr(demo, "SECONDS_PER_STEP", 0.01)
    queued = demo.queue_demo_jobs(functional_portal)
    transaction.commit()
    failing = queued[1]
    wait_for_result(failing)
    page.goto(f"@@asyncjobs-demo?jobs={demo.job_ids(queued)}")
    rows = page.locator("#asyncjobs-demo-jobs tbody tr")
    expect(rows).to_have_count(3)
    screenshot(page, "console/demo-linked")
    page.locator('tr[data-job="fail_on_purpose"] a[data-job-link]').click()
    expect(page).to_have_url(f"{portal_url}/@@asyncjobs-job?id={job_id(failing)}")
    expect(page.locator("#asyncjobs-job")).to_have_attribute("data-job-state", "failed")
    expect(page.locator("#asyncjobs-traceback")).to_contain_text("this demo job fails on purpose")
