"""Jobs queued by views in real (in-process) requests through the publisher."""
import transaction
from plone import api
from plone.app.testing import TEST_USER_ID
from plone.app.testing import TEST_USER_NAME
from plone.app.testing import TEST_USER_PASSWORD
from plone.app.testing import setRoles
from plone.testing.zope import Browser
from Products.SiteAccess.VirtualHostMonster import manage_addVirtualHostMonster
from ZODB.utils import p64

from plone.app.asyncjobs import api as jobs_api
from plone.app.asyncjobs.engine.testing.waiting import wait_for_poll
from plone.app.asyncjobs.testing import wait_for_all_jobs
from plone.app.asyncjobs.testing import wait_for_result
from plone.app.asyncjobs.tests.views import QueueThenConflict


def browser_for(app):
    browser = Browser(app)
    browser.handleErrors = True
    browser.raiseHttpErrors = False
    browser.addHeader("Authorization", f"Basic {TEST_USER_NAME}:{TEST_USER_PASSWORD}")
    return browser


def setup_site(views):
    app, portal = views["app"], views["portal"]
    manage_addVirtualHostMonster(app, "virtual_hosting")
    setRoles(portal, TEST_USER_ID, ["Manager"])
    api.content.create(container=portal, type="Document", id="doc", title="Doc")
    setRoles(portal, TEST_USER_ID, ["Member"])
    transaction.commit()
    return app, portal


def queued_job(portal, contents):
    oid, url = contents.split()
    transaction.begin()
    return portal._p_jar.get(p64(int(oid))), url


def test_a_job_queued_through_a_virtual_host_sees_the_public_urls(views):
    app, portal = setup_site(views)
    browser = browser_for(app)
    browser.open(
        "http://nohost/VirtualHostBase/https/example.org:443/plone/VirtualHostRoot/doc"
        "/@@asyncjobs-test-queue"
    )
    assert browser.headers["status"].startswith("200")
    job, url = queued_job(portal, browser.contents)
    assert url == "https://example.org/doc"
    result = wait_for_result(job)
    assert result["url"] == "https://example.org/doc"
    assert result["portal_url"] == "https://example.org"
    assert result["user"] == TEST_USER_ID


def test_a_job_queued_without_virtual_hosting(views):
    app, portal = setup_site(views)
    browser = browser_for(app)
    browser.open("http://nohost/plone/doc/@@asyncjobs-test-queue")
    job, url = queued_job(portal, browser.contents)
    assert url == "http://nohost/plone/doc"
    assert wait_for_result(job)["url"] == url


def test_a_job_queued_by_a_request_that_fails_never_runs(views):
    app, portal = setup_site(views)
    browser = browser_for(app)
    browser.open("http://nohost/plone/doc/@@asyncjobs-test-queue-then-fail")
    assert browser.headers["status"].startswith("500")
    transaction.begin()
    assert len(jobs_api.get_queue(context=portal)) == 0
    wait_for_poll(views["asyncjobsDispatcher"], count=3)
    transaction.begin()
    assert not hasattr(portal.doc.aq_base, "_asyncjobs_mark")


def test_a_request_retried_after_a_conflict_queues_its_job_once(views):
    app, portal = setup_site(views)
    browser = browser_for(app)
    browser.open("http://nohost/plone/doc/@@asyncjobs-test-queue-then-conflict")
    assert browser.headers["status"].startswith("200")
    assert QueueThenConflict.attempts == 2, "the publisher retried the request"
    job = portal._p_jar.get(p64(int(browser.contents)))
    assert wait_for_result(job) == "attempt 2"
    wait_for_all_jobs()
    queue = jobs_api.get_queue(context=portal)
    assert len(queue) == 0
    history = [done for record in queue.dispatchers.values() for agent in record.values()
               for done in list(agent) + list(agent.completed)]
    assert [done for done in history if "tests.jobs.mark(" in repr(done)] == [job]
    assert portal.doc._asyncjobs_mark == "attempt 2"
