"""The job control panel (browser/controlpanel.zcml) through zope.testbrowser,
against the functional layer: its dispatcher runs the jobs the tests queue
(commit first), and the pages are published in the test's thread."""
import json
import urllib.error
import uuid
from datetime import datetime
from datetime import timedelta
from datetime import timezone

import lxml.html
import pytest
import transaction
from plone import api
from plone.app.testing import SITE_OWNER_NAME
from plone.app.testing import SITE_OWNER_PASSWORD
from plone.app.testing import TEST_USER_ID
from plone.app.testing import TEST_USER_NAME
from plone.app.testing import TEST_USER_PASSWORD
from plone.testing.zope import Browser

from plone.app.asyncjobs import api as jobs_api
from plone.app.asyncjobs import inspection
from plone.app.asyncjobs.access import DATABASE
from plone.app.asyncjobs.engine import status
from plone.app.asyncjobs.engine.dispatchers import DispatcherAgents
from plone.app.asyncjobs.engine.failure import is_failure
from plone.app.asyncjobs.engine.testing.waiting import wait_for_annotation
from plone.app.asyncjobs.engine.testing.waiting import wait_until
from plone.app.asyncjobs.testing import wait_for_all_jobs
from plone.app.asyncjobs.testing import wait_for_result
from plone.app.asyncjobs.tests import jobs


LATER = timedelta(hours=1)


def open_browser(functional, user=SITE_OWNER_NAME, password=SITE_OWNER_PASSWORD):
    browser = Browser(functional["app"])
    if user is not None:
        browser.addHeader("Authorization", f"Basic {user}:{password}")
    return browser


def page_url(portal, name, **params):
    url = f"{portal.absolute_url()}/@@{name}"
    return url + ("?" + "&".join(f"{k}={v}" for k, v in params.items()) if params else "")


def tree(browser):
    return lxml.html.fromstring(browser.contents)


def listed_ids(browser, table="asyncjobs-jobs"):
    return [row.get("data-job-id") for row in tree(browser).cssselect(f"#{table} tbody tr")]


def status_messages(browser):
    """The texts of Plone's status messages (after the word "Info" or "Error")."""
    return [" ".join((node.cssselect("strong")[0].tail or "").split())
            for node in tree(browser).cssselect(".portalMessage")]


def job_id(job):
    return inspection.job_id(job)


def queue_later(portal, count=1, func=jobs.add):
    return [jobs_api.queue_job(func, portal, number, delay=LATER) for number in range(count)]


@pytest.fixture
def dispatcher_uuid(functional):
    """The layer's dispatcher's UUID, once its record is in the queue."""
    uuid_ = functional["asyncjobsDispatcher"].uuid
    wait_until(lambda: uuid_ in jobs_api.get_queues()[""].dispatchers.keys(),
               sync=transaction.begin)
    return str(uuid_)


def running_job(portal, key):
    """Queue :func:`jobs.report_and_wait`; return it once it reported progress."""
    job = jobs_api.queue_job(jobs.report_and_wait, portal, key)
    transaction.commit()
    wait_for_annotation(job, "progress")
    return job


# -- the configlet and who may see the pages ---------------------------------------


def test_the_configlet_is_listed_in_site_setup_for_a_manager(functional, functional_portal):
    browser = open_browser(functional)
    browser.open(f"{functional_portal.absolute_url()}/@@overview-controlpanel")
    link = browser.getLink("Asynchronous jobs")
    assert link.url.endswith("/@@asyncjobs-controlpanel")
    link.click()
    assert tree(browser).cssselect("#asyncjobs-overview")
    assert tree(browser).cssselect("a#setup-link")[0].get("href").endswith(
        "/@@overview-controlpanel")


def test_a_site_administrator_may_use_the_panel(functional, functional_portal):
    functional_portal.acl_users.userFolderAddUser(
        "siteadmin", "secret-password", ["Site Administrator"], [])
    transaction.commit()
    browser = open_browser(functional, "siteadmin", "secret-password")
    browser.open(page_url(functional_portal, "asyncjobs-controlpanel"))
    assert tree(browser).cssselect("#asyncjobs-overview")


PAGES = ["asyncjobs-controlpanel", "asyncjobs-jobs", "asyncjobs-job?id=1",
         "asyncjobs-action?action=purge&days=1", "asyncjobs-live?ids=1"]


@pytest.mark.parametrize("user", [None, TEST_USER_NAME])
def test_members_and_anonymous_are_refused(functional, functional_portal, user):
    browser = open_browser(functional, user, TEST_USER_PASSWORD)
    browser.followRedirects = False
    browser.raiseHttpErrors = False
    for name in PAGES:
        browser.open(f"{functional_portal.absolute_url()}/@@{name}")
        # Plone answers Unauthorized with a redirect to its login page.
        assert browser.headers["status"].startswith("302"), name
        assert "require_login" in browser.headers["location"], name


# -- the overview ----------------------------------------------------------------------


def test_the_overview_shows_queues_counts_and_the_running_dispatcher(
        functional, functional_portal, dispatcher_uuid):
    portal = functional_portal
    queue_later(portal, 2)
    wait_for_result(jobs_api.queue_job(jobs.fail, portal, "on purpose"))
    browser = open_browser(functional)
    browser.open(page_url(portal, "asyncjobs-controlpanel"))
    page = tree(browser)
    [row] = page.cssselect('#asyncjobs-queues tr[data-queue=""]')
    counts = {cell.get("data-count"): int(cell.text) for cell in row.cssselect("[data-count]")}
    assert counts == {"pending": 2, "active": 0, "completed": 0, "failed": 1}
    assert page.cssselect('[data-last-hour="failed"]')[0].text == "1"
    [dispatcher] = page.cssselect(f'[data-dispatcher="{dispatcher_uuid}"]')
    assert dispatcher.get("data-dispatcher-state") == "alive"
    assert dispatcher.get("data-dispatcher-paused") == "false"
    [agent] = dispatcher.cssselect('tr[data-agent="main"]')
    assert agent.get("data-agent-size") == "3"
    assert page.cssselect("script[src$='++resource++plone.app.asyncjobs/controlpanel.js']")


def test_the_overview_shows_how_a_dispatcher_picked_its_jobs_up(
        functional, functional_portal, dispatcher_uuid):
    dispatcher = functional["asyncjobsDispatcher"]
    wait_for_result(jobs_api.queue_job(jobs.add, functional_portal, 1, 2))
    # The pickups are stored with the next ping that is written.
    record = jobs_api.get_queues()[""].dispatchers[dispatcher.uuid]
    record.last_ping -= record.ping_interval
    transaction.commit()
    dispatcher.wake()

    def stored():
        transaction.begin()
        return (getattr(record, "pickups", None) or {}).get("jobs")

    wait_until(stored, describe=lambda: "for the dispatcher to store its pickups")
    browser = open_browser(functional)
    browser.open(page_url(functional_portal, "asyncjobs-controlpanel"))
    [dispatcher_card] = tree(browser).cssselect(f'[data-dispatcher="{dispatcher_uuid}"]')
    [pickups] = dispatcher_card.cssselect("[data-dispatcher-pickups]")
    assert "latency p50" in pickups.text and " ms" in pickups.text


def test_the_overview_shows_running_jobs_with_progress_and_the_agent_holding_them(
        functional, functional_portal, gate_key):
    job = running_job(functional_portal, gate_key)
    browser = open_browser(functional)
    browser.open(page_url(functional_portal, "asyncjobs-controlpanel"))
    page = tree(browser)
    [row] = page.cssselect(f'#asyncjobs-running tr[data-job-id="{job_id(job)}"]')
    assert row.get("data-job-status") == "active"
    [bar] = row.cssselect('[data-job-field="progress"] [role="progressbar"]')
    assert bar.get("aria-valuenow") == "30"
    assert page.cssselect(f'a[data-agent-job="{job_id(job)}"]')


def test_the_script_is_served(functional, functional_portal):
    browser = open_browser(functional)
    browser.open(f"{functional_portal.absolute_url()}"
                 "/++resource++plone.app.asyncjobs/controlpanel.js")
    script = browser.contents.decode() if isinstance(browser.contents, bytes) \
        else browser.contents
    assert "visibilitychange" in script and "data-asyncjobs-live" in script


# -- the lists -------------------------------------------------------------------------


def test_each_list_shows_its_jobs(functional, functional_portal, gate_key):
    portal = functional_portal
    [pending] = queue_later(portal)
    succeeded = jobs_api.queue_job(jobs.add, portal, 1)
    failed = jobs_api.queue_job(jobs.fail, portal, "on purpose")
    wait_for_result(succeeded)
    wait_for_result(failed)
    active = running_job(portal, gate_key)
    browser = open_browser(functional)
    for state, job in [("pending", pending), ("active", active),
                       ("completed", succeeded), ("failed", failed)]:
        browser.open(page_url(portal, "asyncjobs-jobs", state=state))
        assert listed_ids(browser) == [job_id(job)], state
        [row] = tree(browser).cssselect("#asyncjobs-jobs tbody tr")
        assert row.get("data-job-state") == state
    browser.open(page_url(portal, "asyncjobs-jobs", state="failed"))
    assert "builtins.ValueError: on purpose" in browser.contents


def test_the_filters(functional, functional_portal):
    portal = functional_portal
    [add] = queue_later(portal)
    mark = jobs_api.queue_job(jobs.mark, portal, "needle", delay=LATER)
    transaction.commit()
    browser = open_browser(functional)
    browser.open(page_url(portal, "asyncjobs-jobs", state="pending"))
    form = browser.getForm(id="asyncjobs-filters")
    form.getControl(name="callable").value = "jobs.mark"
    form.submit()
    assert listed_ids(browser) == [job_id(mark)]
    for params, expected in [
        ({"text": "NEEDLE"}, [job_id(mark)]),
        ({"user": TEST_USER_ID}, [job_id(add), job_id(mark)]),
        ({"user": "nobody"}, []),
        ({"queue": ""}, [job_id(add), job_id(mark)]),
        ({"queue": "*", "sort": "reverse"}, [job_id(mark), job_id(add)]),
        ({"since": (datetime.now(timezone.utc) + 2 * LATER).isoformat()[:16]}, []),
        ({"until": (datetime.now(timezone.utc) + 2 * LATER).isoformat()[:16]},
         [job_id(add), job_id(mark)]),
    ]:
        browser.open(page_url(portal, "asyncjobs-jobs", state="pending", **params))
        assert listed_ids(browser) == expected, params
    # The form shows the filters of the page it is on (here the last one's).
    assert tree(browser).cssselect("#asyncjobs-filter-until")[0].get("value") == \
        params["until"]


def test_bad_list_parameters_give_a_message_not_a_traceback(functional, functional_portal):
    browser = open_browser(functional)
    browser.raiseHttpErrors = False
    browser.open(page_url(functional_portal, "asyncjobs-jobs", state="failed",
                          since="yesterday"))
    assert browser.headers["status"].startswith("400")
    assert any("since: not an ISO 8601 date and time" in message
               for message in status_messages(browser))
    assert "is-invalid" in tree(browser).cssselect("#asyncjobs-filter-since")[0].get("class")
    assert "Traceback" not in browser.contents


def test_the_pending_list_pages_by_cursor(functional, functional_portal):
    queued = [job_id(job) for job in queue_later(functional_portal, 30)]
    transaction.commit()
    browser = open_browser(functional)
    browser.open(page_url(functional_portal, "asyncjobs-jobs", state="pending", size=10))
    seen = listed_ids(browser)
    for _ in range(2):
        browser.getLink(id="asyncjobs-next-page").click()
        assert "after=" in browser.url and "size=10" in browser.url
        seen += listed_ids(browser)
    assert seen == queued  # due time order: the order they were queued in
    assert not tree(browser).cssselect("#asyncjobs-next-page")  # nothing after these
    browser.getLink(id="asyncjobs-first-page").click()
    assert listed_ids(browser) == queued[:10]
    browser.open(page_url(functional_portal, "asyncjobs-jobs", state="pending", size=10,
                          sort="reverse"))
    assert listed_ids(browser) == queued[::-1][:10]


def test_a_filtered_list_stops_at_the_scan_limit_and_offers_to_go_on(
        functional, functional_portal, monkeypatch):
    portal = functional_portal
    queue_later(portal, 12)
    [wanted] = queue_later(portal, func=jobs.mark)
    transaction.commit()
    monkeypatch.setattr(inspection, "SCAN_LIMIT", 10)
    browser = open_browser(functional)
    browser.open(page_url(portal, "asyncjobs-jobs", state="pending", size=5,
                          callable="jobs.mark"))
    assert listed_ids(browser) == []
    exhausted = tree(browser).cssselect("#asyncjobs-exhausted")[0].text_content()
    assert "Searched 10 jobs" in " ".join(exhausted.split())
    browser.getLink("Continue searching").click()
    assert listed_ids(browser) == [job_id(wanted)]
    assert not tree(browser).cssselect("#asyncjobs-exhausted")


# -- the job page ------------------------------------------------------------------------


def test_the_job_page_of_a_failed_job_shows_its_traceback(functional, functional_portal):
    portal = functional_portal
    job = jobs_api.queue_job(jobs.fail, portal, "shown in full")
    wait_for_result(job)
    browser = open_browser(functional)
    browser.open(page_url(portal, "asyncjobs-job", id=job_id(job)))
    page = tree(browser)
    [root] = page.cssselect("#asyncjobs-job")
    assert root.get("data-job-id") == job_id(job)
    assert root.get("data-job-state") == "failed"
    traceback = page.cssselect("pre#asyncjobs-traceback")[0].text
    assert traceback.startswith("Traceback") and "ValueError: shown in full" in traceback
    assert page.cssselect("#asyncjobs-job-context")[0].get("href") == portal.absolute_url()
    assert TEST_USER_ID in page.cssselect("#asyncjobs-job-user")[0].text_content()
    # The callback that notifies the outcome event is the service's own.
    assert not page.cssselect("#asyncjobs-callbacks")
    assert {link.get("data-action") for link in page.cssselect("a[data-action]")} == \
        {"retry", "remove"}


def test_the_job_page_of_a_running_job_has_a_progress_bar(
        functional, functional_portal, gate_key):
    job = running_job(functional_portal, gate_key)
    browser = open_browser(functional)
    browser.open(page_url(functional_portal, "asyncjobs-job", id=job_id(job)))
    [bar] = tree(browser).cssselect('#asyncjobs-job .progress[role="progressbar"]')
    assert (bar.get("aria-valuenow"), bar.get("aria-valuemin"), bar.get("aria-valuemax")) \
        == ("30", "0", "100")
    assert tree(browser).cssselect('[data-job-field="progress-message"]')[0].text == "working"


@pytest.mark.parametrize("bad_id", ["12345678", "x", str(2 ** 64), ""])
def test_an_unknown_job_gives_a_message_and_404(functional, functional_portal, bad_id):
    browser = open_browser(functional)
    browser.raiseHttpErrors = False
    browser.open(page_url(functional_portal, "asyncjobs-job", id=bad_id))
    assert browser.headers["status"].startswith("404")
    assert tree(browser).cssselect("#asyncjobs-job-missing")
    assert any("There is no job" in message for message in status_messages(browser))


# -- actions -------------------------------------------------------------------------------


def confirm(browser, portal, action, **params):
    """Open the confirmation page of ``action`` and press its button."""
    browser.open(page_url(portal, "asyncjobs-action", action=action, **params))
    form = browser.getForm(id="asyncjobs-confirm-form")
    assert form.getControl(name="_authenticator").value
    form.getControl(name=f"form.buttons.{action}").click()


def test_cancel_a_pending_job(functional, functional_portal):
    [job] = queue_later(functional_portal)
    transaction.commit()
    browser = open_browser(functional)
    browser.open(page_url(functional_portal, "asyncjobs-job", id=job_id(job)))
    browser.getLink(url="action=cancel").click()
    assert tree(browser).cssselect("#asyncjobs-confirm")
    browser.getControl(name="form.buttons.cancel").click()
    assert browser.url == page_url(functional_portal, "asyncjobs-job", id=job_id(job))
    assert f"Job {job_id(job)} was cancelled." in status_messages(browser)
    transaction.begin()
    assert job.status == "completed" and f"cancelled by {SITE_OWNER_NAME}" in \
        inspection.describe(job)["result"]


def test_cancel_a_running_job_that_checks_for_it(functional, functional_portal, gate_key):
    job = jobs_api.queue_job(jobs.wait_for_cancel, functional_portal, gate_key, True)
    transaction.commit()
    assert jobs.gate(f"{gate_key}/running").wait(30)
    browser = open_browser(functional)
    browser.open(page_url(functional_portal, "asyncjobs-job", id=job_id(job)))
    browser.getLink(url="action=cancel").click()
    browser.getControl(name="form.buttons.cancel").click()
    assert f"Job {job_id(job)} was asked to stop; it stops if it checks for it." in \
        status_messages(browser)
    assert is_failure(wait_for_result(job))
    wait_for_all_jobs()
    browser.open(page_url(functional_portal, "asyncjobs-job", id=job_id(job)))
    [reason] = tree(browser).cssselect('#asyncjobs-cancelled [data-job-field="cancel-reason"]')
    assert reason.text == f"cancelled while running by {SITE_OWNER_NAME}"
    assert not tree(browser).cssselect("#asyncjobs-traceback, #asyncjobs-cancel-requested")


def test_a_running_job_that_ignores_a_cancel_runs_on_and_the_page_says_so(
        functional, functional_portal, gate_key):
    job = jobs_api.queue_job(jobs.wait_for_cancel, functional_portal, gate_key, False)
    transaction.commit()
    assert jobs.gate(f"{gate_key}/running").wait(30)
    browser = open_browser(functional)
    confirm(browser, functional_portal, "cancel", id=job_id(job))
    page = tree(browser)
    assert page.cssselect('#asyncjobs-cancel-requested [data-job-field="cancel-requested"]')
    assert "the job is still running" in page.cssselect("#asyncjobs-cancel-requested")[0] \
        .text_content()
    assert not page.cssselect('a[data-action="cancel"]')  # asked once is enough
    jobs.gate(gate_key).set()
    assert wait_for_result(job) == "finished"
    transaction.begin()
    facts = inspection.describe(job)
    assert (facts["outcome"], facts["cancel_requested"]) == ("succeeded", None)


def test_retry_a_failed_job(functional, functional_portal):
    job = jobs_api.queue_job(jobs.fail, functional_portal, "again and again")
    wait_for_result(job)
    browser = open_browser(functional)
    confirm(browser, functional_portal, "retry", id=job_id(job))
    transaction.begin()
    [new_id] = inspection.describe(job, detail=True)["retried_as"]
    assert browser.url == page_url(functional_portal, "asyncjobs-job", id=new_id)
    assert f"Job {job_id(job)} was queued again as job {new_id}." in status_messages(browser)
    new = inspection.get_job(jobs_api.get_queues(), new_id, DATABASE)
    wait_for_result(new, commit=False)
    assert inspection.describe(new)["result"] == "builtins.ValueError: again and again"
    browser.reload()
    assert tree(browser).cssselect("#asyncjobs-job-retry-of")[0].get("href").endswith(
        f"id={job_id(job)}")


def test_remove_a_finished_job(functional, functional_portal):
    job = jobs_api.queue_job(jobs.add, functional_portal, 1)
    wait_for_result(job)
    browser = open_browser(functional)
    confirm(browser, functional_portal, "remove", id=job_id(job))
    assert browser.url == page_url(functional_portal, "asyncjobs-jobs", state="completed")
    assert f"Job {job_id(job)} was removed." in status_messages(browser)
    assert listed_ids(browser) == []
    transaction.begin()
    with pytest.raises(LookupError):  # in no history any more
        inspection.remove(job, "test")


def test_purge_finished_jobs(functional, functional_portal):
    for number in range(3):
        jobs_api.queue_job(jobs.add, functional_portal, number)
    wait_for_all_jobs()
    browser = open_browser(functional)
    browser.open(page_url(functional_portal, "asyncjobs-controlpanel"))
    form = browser.getForm(id="asyncjobs-purge")
    form.getControl(name="days").value = "0"
    form.submit()
    browser.getControl(name="form.buttons.purge").click()
    assert browser.url == page_url(functional_portal, "asyncjobs-controlpanel")
    assert any(message.startswith("3 jobs that finished more than 0 days ago")
               for message in status_messages(browser))
    [row] = tree(browser).cssselect('#asyncjobs-queues tr[data-queue=""]')
    assert row.cssselect('[data-count="completed"]')[0].text == "0"


def test_change_an_agents_size(functional, functional_portal, dispatcher_uuid):
    uuid_ = dispatcher_uuid
    browser = open_browser(functional)
    browser.open(page_url(functional_portal, "asyncjobs-controlpanel"))
    actions = [form.get("data-action") for form in tree(browser).forms]
    form = browser.getForm(index=actions.index("resize"))
    form.getControl(name="size").value = "5"
    form.submit()
    question = " ".join(tree(browser).cssselect("#asyncjobs-confirm .lead")[0].text.split())
    assert question == (f"Agent main of dispatcher {uuid_} in queue (default queue) will have "
                        "size 5: the most jobs it runs at a time. With size 0 it starts none.")
    browser.getControl(name="form.buttons.resize").click()
    assert any(message.startswith(f"Agent main of dispatcher {uuid_} now has size 5")
               for message in status_messages(browser))
    assert tree(browser).cssselect('tr[data-agent="main"]')[0].get("data-agent-size") == "5"
    transaction.begin()
    [record] = jobs_api.get_queues()[""].dispatchers.values()
    assert record["main"].size == 5


def test_pause_and_resume_a_dispatcher(functional, functional_portal, dispatcher_uuid):
    uuid_ = dispatcher_uuid
    browser = open_browser(functional)
    confirm(browser, functional_portal, "pause", dispatcher=uuid_)
    assert f"The agents of dispatcher {uuid_} start no new jobs now; the jobs they run " \
        "finish." in status_messages(browser)
    [node] = tree(browser).cssselect(f'[data-dispatcher="{uuid_}"]')
    assert node.get("data-dispatcher-paused") == "true"
    assert node.cssselect('form[data-action="resume"]')
    transaction.begin()
    [record] = jobs_api.get_queues()[""].dispatchers.values()
    assert record.paused
    job = jobs_api.queue_job(jobs.add, functional_portal, 1)
    transaction.commit()
    confirm(browser, functional_portal, "resume", dispatcher=uuid_)
    assert tree(browser).cssselect(f'[data-dispatcher="{uuid_}"]')[0].get(
        "data-dispatcher-paused") == "false"
    assert wait_for_result(job, commit=False) == 1


ACTIONS = [
    ("cancel", lambda portal, uuid_: {"id": job_id(queue_later(portal)[0])}),
    ("retry", lambda portal, uuid_: {"id": job_id(queue_later(portal)[0])}),
    ("remove", lambda portal, uuid_: {"id": job_id(queue_later(portal)[0])}),
    ("purge", lambda portal, uuid_: {"days": "0"}),
    ("resize", lambda portal, uuid_: {"dispatcher": uuid_, "queue": "", "agent": "main",
                                      "size": "1"}),
    ("pause", lambda portal, uuid_: {"dispatcher": uuid_}),
    ("resume", lambda portal, uuid_: {"dispatcher": uuid_}),
]


def snapshot():
    """What the actions change: counts, pauses, agent sizes."""
    transaction.begin()
    facts = inspection.overview(jobs_api.get_queues(), DATABASE)
    return ([queue["counts"] for queue in facts["queues"]],
            [(dispatcher["paused"], dispatcher["queues"]) for dispatcher in facts["dispatchers"]])


@pytest.mark.parametrize("action, make_params", ACTIONS, ids=[a for a, _ in ACTIONS])
def test_an_action_without_the_token_is_forbidden(
        functional, functional_portal, dispatcher_uuid, action, make_params):
    params = make_params(functional_portal, dispatcher_uuid)
    transaction.commit()
    before = snapshot()
    browser = open_browser(functional)
    body = "&".join(f"{key}={value}" for key, value in params.items())
    with pytest.raises(urllib.error.HTTPError) as refused:
        browser.post(page_url(functional_portal, "asyncjobs-action"),
                     f"{body}&form.buttons.{action}=1")
    assert refused.value.code == 403
    assert snapshot() == before


@pytest.mark.parametrize("action, params, message", [
    ("purge", {"days": "abc"}, "days: not a number: 'abc'"),
    ("purge", {"days": "nan"}, "days: must be between 0 and 36500"),
    ("resize", {"queue": "", "agent": "main", "size": "1000"},
     "size: must be between 0 and 100"),
    ("resize", {"queue": "", "agent": "nope", "size": "1"}, "has no agent 'nope'"),
    ("pause", {"dispatcher": "no-such-dispatcher"}, "there is no dispatcher"),
    ("cancel", {"id": "12345678"}, "there is no job 12345678"),
])
def test_bad_input_to_an_action_gives_a_message(
        functional, functional_portal, dispatcher_uuid, action, params, message):
    params.setdefault("dispatcher", dispatcher_uuid)
    browser = open_browser(functional)
    browser.open(page_url(functional_portal, "asyncjobs-controlpanel"))
    token = browser.getForm(id="asyncjobs-purge").getControl(name="_authenticator").value
    body = "&".join(f"{key}={value}" for key, value in params.items())
    browser.post(page_url(functional_portal, "asyncjobs-action"),
                 f"{body}&_authenticator={token}&form.buttons.{action}=1")
    assert any(message in text for text in status_messages(browser)), \
        status_messages(browser)
    assert "Traceback" not in browser.contents


def test_an_action_the_status_does_not_allow_gives_a_message(functional, functional_portal):
    job = jobs_api.queue_job(jobs.add, functional_portal, 1)
    wait_for_result(job)
    browser = open_browser(functional)
    confirm(browser, functional_portal, "cancel", id=job_id(job))
    assert browser.url == page_url(functional_portal, "asyncjobs-job", id=job_id(job))
    assert any("only a pending or running job can be cancelled" in text
               for text in status_messages(browser))


def test_an_unknown_action_gives_a_message(functional, functional_portal):
    browser = open_browser(functional)
    browser.open(page_url(functional_portal, "asyncjobs-action", action="explode"))
    assert browser.url == page_url(functional_portal, "asyncjobs-controlpanel")
    assert any("action: must be one of" in text for text in status_messages(browser))


# -- live updates ----------------------------------------------------------------------------


def test_the_live_view_reports_the_progress_of_a_running_job(
        functional, functional_portal, gate_key):
    job = running_job(functional_portal, gate_key)
    [done] = queue_later(functional_portal)
    transaction.commit()
    browser = open_browser(functional)
    browser.open(page_url(functional_portal, "asyncjobs-live",
                          ids=f"{job_id(job)},{job_id(done)},999999"))
    assert browser.headers["content-type"].startswith("application/json")
    answer = json.loads(browser.contents)
    running, pending = answer["jobs"]
    assert running["id"] == job_id(job) and running["status"] == "active"
    assert running["progress"] == {"done": 3, "total": 10, "message": "working",
                                   "fraction": 0.3}
    assert pending["status"] == "pending" and pending["progress"] is None
    # The badge as the page shows it, which controlpanel.js copies.
    assert running["badge"] == {"label": "active", "class": "badge text-bg-primary"}
    assert pending["badge"] == {"label": "pending", "class": "badge text-bg-secondary"}
    assert answer["missing"] == ["999999"]
    jobs.gate(gate_key).set()
    wait_for_result(job, commit=False)
    browser.reload()
    finished = json.loads(browser.contents)["jobs"][0]
    assert finished["status"] == "completed"
    assert finished["badge"] == {"label": "succeeded", "class": "badge text-bg-success"}


@pytest.mark.parametrize("ids", ["", ",".join(str(n) for n in range(1, 102))])
def test_the_live_view_refuses_no_or_too_many_ids(functional, functional_portal, ids):
    browser = open_browser(functional)
    browser.raiseHttpErrors = False
    browser.open(page_url(functional_portal, "asyncjobs-live", ids=ids))
    assert browser.headers["status"].startswith("400")
    assert "error" in json.loads(browser.contents)


def test_pages_mark_their_root_for_live_updates(functional, functional_portal, gate_key):
    job = running_job(functional_portal, gate_key)
    browser = open_browser(functional)
    for name, params in [("asyncjobs-controlpanel", {}),
                         ("asyncjobs-jobs", {"state": "active"}),
                         ("asyncjobs-job", {"id": job_id(job)})]:
        browser.open(page_url(functional_portal, name, **params))
        [root] = tree(browser).cssselect("[data-asyncjobs-live]")
        assert root.get("data-asyncjobs-live").endswith("/@@asyncjobs-live")
        assert json.loads(root.get("data-asyncjobs-labels"))["progress"] == "Progress"
        assert root.cssselect(f'[data-job-id="{job_id(job)}"]') or \
            root.get("data-job-id") == job_id(job)


# -- profiles and facts ---------------------------------------------------------------------


def configlet_ids(portal):
    return [action.getId() for action in api.portal.get_tool("portal_controlpanel").listActions()]


def test_uninstall_removes_the_configlet(portal):
    from plone.app.testing import setRoles
    from plone.base.utils import get_installer

    assert "plone.app.asyncjobs" in configlet_ids(portal)
    setRoles(portal, TEST_USER_ID, ["Manager"])
    get_installer(portal).uninstall_product("plone.app.asyncjobs")
    assert "plone.app.asyncjobs" not in configlet_ids(portal)


def test_the_upgrade_to_1002_adds_the_configlet(portal):
    from Products.GenericSetup.upgrade import listUpgradeSteps

    setup_tool = api.portal.get_tool("portal_setup")
    [step] = [s for s in listUpgradeSteps(setup_tool, "plone.app.asyncjobs:default", "1001")
              if not isinstance(s, list) and s["source"] == ("1001",)]
    api.portal.get_tool("portal_controlpanel").unregisterConfiglet("plone.app.asyncjobs")
    assert "plone.app.asyncjobs" not in configlet_ids(portal)
    step["step"].doStep(setup_tool)
    assert "plone.app.asyncjobs" in configlet_ids(portal)


def test_a_dispatcher_is_stuck_between_its_ping_interval_and_its_death():
    record = DispatcherAgents(uuid.uuid4())
    now = datetime.now(timezone.utc)
    record.activated = record.last_ping = now
    assert status.dispatcher_state(record, now + timedelta(seconds=40)) == "alive"
    assert status.dispatcher_state(record, now + timedelta(seconds=50)) == "stuck"
    record.last_ping = now - timedelta(minutes=5)
    record.activated = now - timedelta(minutes=5)
    assert status.dispatcher_state(record) == "dead"
    record.activated = None
    assert status.dispatcher_state(record) == "deactivated"


@pytest.mark.parametrize("completed, rate", [
    (0, None), (1, None), (59, None), (60, "about 1 a minute"), (150, "about 2.5 a minute"),
    (3600, "about 1 a second"), (9000, "about 2.5 a second"), (720000, "about 200 a second"),
])
def test_the_last_hours_pace_has_a_sensible_unit(functional_portal, completed, rate):
    from plone.app.asyncjobs.browser.overview import OverviewView

    view = OverviewView(functional_portal, functional_portal.REQUEST)
    view.facts = {"last_hour": {"completed": completed, "failed": 0}}
    assert view.rate == rate


def test_one_purged_job_of_one_day_reads_in_the_singular(functional, functional_portal):
    from plone.app.asyncjobs.browser import actions
    from plone.app.asyncjobs.browser.actions import ActionView
    from zope.i18n import translate

    view = ActionView(functional_portal, functional_portal.REQUEST)
    assert view.age("1") == "1 day" and view.age("0.5") == "0.5 days"
    jobs_api.queue_job(jobs.add, functional_portal, 1)
    wait_for_all_jobs()
    message, _ = actions.purge(view, {"days": "0"})
    assert translate(message) == "1 job that finished more than 0 days ago was removed."


def test_retry_is_offered_only_when_it_would_be_done(functional, functional_portal):
    """A Site Administrator is not offered to retry a Manager's job (it
    would run with roles the administrator does not have), a Manager is."""
    from plone.app.testing import setRoles

    setRoles(functional_portal, TEST_USER_ID, ["Manager"])
    functional_portal.acl_users.userFolderAddUser(
        "siteadmin", "secret-password", ["Site Administrator"], [])
    job = jobs_api.queue_job(jobs.add, functional_portal, 1)
    wait_for_result(job)
    for user, password, offered in (("siteadmin", "secret-password", {"remove"}),
                                    (SITE_OWNER_NAME, SITE_OWNER_PASSWORD,
                                     {"retry", "remove"})):
        browser = open_browser(functional, user, password)
        browser.open(page_url(functional_portal, "asyncjobs-job", id=job_id(job)))
        actions = {link.get("data-action") for link in tree(browser).cssselect("a[data-action]")}
        assert actions == offered, user
