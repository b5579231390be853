"""Jobs run in the site, as the user, with the URLs, of the place they were
queued from; a context that moved is found by UID, a deleted one fails."""
import pytest
import transaction
from AccessControl import Unauthorized
from plone import api
from plone.app.testing import SITE_OWNER_NAME
from plone.app.testing import TEST_USER_ID
from plone.app.testing import TEST_USER_NAME
from plone.app.testing import login
from plone.app.testing import logout
from zope.component.hooks import getSite
from zope.globalrequest import getRequest
from Products.PluggableAuthService.PluggableAuthService import PluggableAuthService
from plone.app.testing import setRoles

from plone.app.asyncjobs.engine.failure import is_failure
from plone.app.asyncjobs.engine.job import Job
from plone.app.asyncjobs.engine.testing.waiting import wait_for_poll
from plone.app.asyncjobs.engine.testing.waiting import wait_until
from plone.app.asyncjobs.service.context import ExecutionContext
from plone.app.asyncjobs.service.exceptions import ContextNotFoundError
from plone.app.asyncjobs.service.exceptions import UserNotFoundError
from plone.app.asyncjobs.service.jobs import ContextJob
from plone.app.asyncjobs.testing import wait_for_result
from plone.app.asyncjobs.tests import jobs
from plone.app.asyncjobs import api as jobs_api


def make_document(portal, id="doc", container=None):
    setRoles(portal, TEST_USER_ID, ["Manager"])
    doc = api.content.create(container=container or portal, type="Document", id=id,
                             title="Doc")
    setRoles(portal, TEST_USER_ID, ["Member"])
    return doc


def test_job_runs_in_a_worker_thread_in_the_site_as_the_user(portal):
    result = wait_for_result(jobs_api.queue_job(jobs.describe, portal))
    assert result["thread"].startswith("asyncjobs worker")
    assert result["site"] == "/plone"
    assert result["path"] == "/plone"
    assert result["user"] == result["api_user"] == TEST_USER_ID
    assert result["anonymous"] is False
    assert result["request_is_global"] is True


def test_context_urls_are_those_of_the_queuing_request(portal):
    doc = make_document(portal)
    expected = doc.absolute_url()
    result = wait_for_result(jobs_api.queue_job(jobs.describe, doc))
    assert result["url"] == expected
    assert result["actual_url"] == result["request_url"] == expected
    assert result["portal_url"] == portal.absolute_url()


def test_virtual_host_urls_are_kept(portal, http_request):
    doc = make_document(portal)
    # What the VirtualHostMonster does for
    # /VirtualHostBase/https/example.org:443/plone/VirtualHostRoot/doc
    http_request.setServerURL("https", "example.org", 443)
    http_request.other["PARENTS"] = [portal]
    http_request.setVirtualRoot([])
    assert doc.absolute_url() == "https://example.org/doc"
    result = wait_for_result(jobs_api.queue_job(jobs.describe, doc))
    assert result["url"] == "https://example.org/doc"
    assert result["portal_url"] == "https://example.org"


def test_virtual_host_with_a_path_prefix(portal, http_request):
    doc = make_document(portal)
    # .../VirtualHostBase/http/example.org:8080/plone/VirtualHostRoot/_vh_site/doc
    http_request.setServerURL("http", "example.org", 8080)
    http_request.other["PARENTS"] = [portal]
    http_request.setVirtualRoot(["site"])
    result = wait_for_result(jobs_api.queue_job(jobs.describe, doc))
    assert result["url"] == "http://example.org:8080/site/doc"


def test_a_virtual_root_that_needs_quoting_is_quoted_once(portal, http_request):
    doc = make_document(portal)
    # .../VirtualHostBase/http/example.org:80/plone/VirtualHostRoot/_vh_my%20site/doc
    http_request.setServerURL("http", "example.org", 80)
    http_request.other["PARENTS"] = [portal]
    http_request.setVirtualRoot(["my site"])
    assert doc.absolute_url() == "http://example.org/my%20site/doc"
    result = wait_for_result(jobs_api.queue_job(jobs.describe, doc))
    assert result["url"] == "http://example.org/my%20site/doc"


def test_content_created_by_a_job_belongs_to_the_queuing_member(portal):
    setRoles(portal, TEST_USER_ID, ["Manager"])
    folder = api.content.create(container=portal, type="Folder", id="folder")
    setRoles(portal, TEST_USER_ID, ["Member"])
    folder.manage_setLocalRoles(TEST_USER_ID, ["Contributor"])
    result = wait_for_result(jobs_api.queue_job(jobs.create_document, folder, "made-by-job"))
    assert result["path"] == "/plone/folder/made-by-job"
    assert result["creators"] == (TEST_USER_ID,)
    assert result["owner"] == TEST_USER_ID
    transaction.begin()
    assert portal.folder["made-by-job"].listCreators() == (TEST_USER_ID,)


def test_a_user_lacking_permission_gets_unauthorized_as_the_failure(portal):
    job = jobs_api.queue_job(jobs.create_document, portal, "forbidden")
    result = wait_for_result(job)
    assert is_failure(result)
    assert result.check(Unauthorized)
    transaction.begin()
    assert "forbidden" not in portal.objectIds()


def test_anonymous_can_queue_jobs(portal):
    logout()
    result = wait_for_result(jobs_api.queue_job(jobs.describe, portal))
    assert result["anonymous"] is True
    assert result["user"] is None
    assert result["user_name"] == "Anonymous User"


def test_a_user_of_the_zope_root_is_restored_from_there(app, portal):
    login(app, SITE_OWNER_NAME)
    result = wait_for_result(jobs_api.queue_job(jobs.describe, portal))
    assert result["user"] == SITE_OWNER_NAME
    result = wait_for_result(jobs_api.queue_job(jobs.create_document, portal, "by-owner"))
    assert result["creators"] == (SITE_OWNER_NAME,)


def test_a_moved_context_is_found_by_its_uid(portal):
    doc = make_document(portal)
    transaction.commit()
    job = jobs_api.queue_job(jobs.describe, doc)
    setRoles(portal, TEST_USER_ID, ["Manager"])
    api.content.rename(obj=doc, new_id="renamed")
    result = wait_for_result(job)
    assert result["path"] == "/plone/renamed"
    assert result["url"] == portal.absolute_url() + "/renamed"


def test_a_context_replaced_by_another_object_is_not_mistaken_for_it(portal):
    doc = make_document(portal)
    transaction.commit()
    job = jobs_api.queue_job(jobs.mark, doc, "for the original")
    setRoles(portal, TEST_USER_ID, ["Manager"])
    api.content.rename(obj=doc, new_id="original")
    api.content.create(container=portal, type="Document", id="doc", title="Impostor")
    wait_for_result(job)
    transaction.begin()
    assert portal.original._asyncjobs_mark == "for the original"
    assert not hasattr(portal.doc.aq_base, "_asyncjobs_mark")


def test_a_deleted_context_fails_the_job_clearly(portal):
    doc = make_document(portal)
    transaction.commit()
    job = jobs_api.queue_job(jobs.describe, doc)
    setRoles(portal, TEST_USER_ID, ["Manager"])
    api.content.delete(obj=doc)
    result = wait_for_result(job)
    assert is_failure(result)
    assert result.check(ContextNotFoundError)
    assert "/plone/doc" in result.getErrorMessage()
    assert "deleted" in result.getErrorMessage()


def test_a_deleted_user_fails_the_job_clearly(portal):
    setRoles(portal, TEST_USER_ID, ["Manager"])
    api.user.create(email="gone@example.org", username="gone", password="secret-enough-1")
    login(portal, "gone")
    job = jobs_api.queue_job(jobs.describe, portal)
    login(portal, "test-user")
    api.user.delete(username="gone")
    result = wait_for_result(job)
    assert result.check(UserNotFoundError)


def test_a_job_queued_in_an_aborted_transaction_never_runs(portal, integration):
    job = jobs_api.queue_job(jobs.mark, portal, "aborted")
    transaction.abort()
    assert job._p_jar is None
    transaction.begin()
    assert len(jobs_api.get_queue()) == 0
    wait_for_poll(integration["asyncjobsDispatcher"], count=3)
    transaction.begin()
    assert not hasattr(portal.aq_base, "_asyncjobs_mark")


def test_changes_of_a_failing_job_are_rolled_back(portal):
    doc = make_document(portal)
    job = jobs_api.queue_job(jobs.fail, doc, "no")
    assert wait_for_result(job).check(ValueError)
    transaction.begin()
    assert not hasattr(doc.aq_base, "_asyncjobs_mark")


def test_the_thread_is_restored_after_the_job(portal):
    """A context job called in the test's own thread leaves the site, the
    user and the request as they were."""
    from AccessControl import getSecurityManager
    from zope.component.hooks import getSite
    from zope.globalrequest import getRequest

    job = jobs_api.queue_job(jobs.describe, portal)
    request, site, user = getRequest(), getSite(), getSecurityManager().getUser()
    active = job.execution.enter(portal._p_jar)
    assert getRequest() is not request
    active.exit()
    assert getRequest() is request
    assert getSite() is site
    assert getSecurityManager().getUser() is user


def test_a_job_can_queue_another_job_in_its_context(portal):
    outer = jobs_api.queue_job(jobs.queue_another, portal, 20, 3)
    assert wait_for_result(outer) == 23

    def inner_jobs():
        # A job reaches its agent's history at the agent's next claim or
        # poll, which may come after its outcome.
        records = jobs_api.get_queue().dispatchers.values()
        return [job for record in records for agent in record.values()
                for job in agent.completed if getattr(job, "func", None) is jobs.add]

    inner = wait_until(inner_jobs, sync=transaction.begin,
                       describe=lambda: "waiting for the inner job in its agent's history")
    assert len(inner) == 1
    assert inner[0].execution.user_id == TEST_USER_ID
    assert inner[0].execution.context_path == ("", "plone")


def test_content_created_by_a_job_is_cataloged(portal):
    """The catalog's indexing queue joins transaction.get(): it must be the
    job's transaction."""
    setRoles(portal, TEST_USER_ID, ["Manager"])
    wait_for_result(jobs_api.queue_job(jobs.create_document, portal, "indexed"))
    transaction.begin()
    assert [b.getPath() for b in portal.portal_catalog(id="indexed")] == ["/plone/indexed"]
    # and a later job sees it in the catalog
    found = wait_for_result(jobs_api.queue_job(jobs.catalog_paths, portal, id="indexed"))
    assert found == ["/plone/indexed"]


def test_a_job_can_use_savepoints(portal):
    """plone.api's rename takes a savepoint of transaction.get()."""
    setRoles(portal, TEST_USER_ID, ["Manager"])
    result = wait_for_result(jobs_api.queue_job(jobs.create_and_rename, portal, "tmp", "final"))
    assert result == "/plone/final"
    transaction.begin()
    assert "final" in portal.objectIds() and "tmp" not in portal.objectIds()
    assert [b.getPath() for b in portal.portal_catalog(id="final")] == ["/plone/final"]


def test_context_jobs_calling_one_function_do_the_same_work(portal):
    # What group commit compares (every context job calls its function
    # through the same method of its own).
    first, second = ContextJob(jobs.add, portal, 1), ContextJob(jobs.add, portal, 2)
    assert first.same_work(second)
    assert not first.same_work(ContextJob(jobs.fail, portal, "no"))
    assert not first.same_work(Job(jobs.add, portal, 1))


@pytest.fixture
def user_lookups(monkeypatch):
    """The user ids PAS is asked for, in order."""
    asked = []
    original = PluggableAuthService.getUserById

    def counting(self, user_id, default=None):
        asked.append(user_id)
        return original(self, user_id, default)

    monkeypatch.setattr(PluggableAuthService, "getUserById", counting)
    return asked


def test_context_jobs_of_a_batch_share_their_outcome_commits(portal, integration,
                                                              recorded_events, user_lookups):
    """The jobs the service queues, each with the callback that notifies
    its outcome, join group commits in a worker; a job and its callback,
    and the jobs of one group, look their user up once."""
    dispatcher = integration["asyncjobsDispatcher"]
    grouped_before = dispatcher.statistics["outcomes grouped"]
    queued = [jobs_api.queue_job(jobs.add, portal, number, 1) for number in range(40)]
    transaction.commit()
    assert [wait_for_result(job) for job in queued] == list(range(1, 41))
    assert dispatcher.statistics["outcomes grouped"] > grouped_before
    assert sorted(entry["outcome"] for entry in recorded_events) == list(range(1, 41))
    assert all(entry["user"] == TEST_USER_ID for entry in recorded_events)
    # Two per job (the job, its callback) without sharing.
    assert 0 < user_lookups.count(TEST_USER_ID) < 40


def test_the_callback_run_right_after_its_job_reuses_its_context(
        portal, integration, recorded_events):
    """The callback notifying a job's outcome runs next, in the transaction
    that holds that outcome for a group commit or in the one its commit
    began, with the job's request (the job left a tag on it)."""
    queued = [jobs_api.queue_job(jobs.tag_request, portal, number) for number in range(20)]
    queued += [jobs_api.queue_job(jobs.tag_request, portal, "written", write=True)]
    transaction.commit()
    assert [wait_for_result(job) for job in queued] == [*range(20), "written"]
    assert all(entry["request tag"] == entry["outcome"] for entry in recorded_events)
    assert all(entry["user"] == TEST_USER_ID and entry["site"] == "plone"
               for entry in recorded_events)


def test_a_callback_starting_in_a_later_transaction_restores_the_context_anew(
        app, portal):
    job = jobs_api.queue_job(jobs.add, portal, 1, 2, delay=3600)
    transaction.commit()
    callback = job.callbacks[0]
    before = (getRequest(), getSite())
    inherited = job.execution.enter(job._p_jar)
    inherited.request.other["asyncjobs tag"] = "the job's"
    callback.inherit(inherited)
    assert (getRequest(), getSite()) == before  # suspended: the thread as it was
    transaction.commit()
    active = callback.set_up()
    try:
        assert active is not inherited
        assert active.request.get("asyncjobs tag") is None
        assert getRequest() is active.request
        assert inherited.request.other == {}  # closed
    finally:
        callback.tear_down(active)
    assert (getRequest(), getSite()) == before


def test_a_user_found_in_one_transaction_is_looked_up_again_in_the_next(
        app, portal, user_lookups):
    setRoles(portal, TEST_USER_ID, ["Manager"])
    api.user.create(email="gone@example.org", username="gone", password="secret-enough-1")
    login(portal, "gone")
    execution = ExecutionContext.capture(portal)
    login(portal, TEST_USER_NAME)
    transaction.commit()
    del user_lookups[:]
    assert execution.find_user(app).getId() == "gone"
    assert execution.find_user(app).getId() == "gone"
    assert user_lookups == ["gone"]
    api.user.delete(username="gone")
    transaction.commit()
    del user_lookups[:]
    with pytest.raises(UserNotFoundError):
        execution.find_user(app)
    assert user_lookups == ["gone"]
