"""Porting from plone.app.async: its usage examples, names, files and defaults."""
import doctest
import subprocess
import sys
import types
from datetime import datetime
from datetime import timedelta
from datetime import timezone
from pathlib import Path

import pytest
import transaction
from plone.app.testing import SITE_OWNER_NAME
from plone.app.testing import TEST_USER_ID
from plone.app.testing import TEST_USER_NAME
from plone.app.testing import login
from zope.component import getGlobalSiteManager
from zope.component import getSiteManager
from zope.component import getUtility
from zope.component import queryUtility
from zope.configuration import xmlconfig
from zope.interface.verify import verifyObject
from plone.testing import zca

import plone.app.asyncjobs
from plone.app.asyncjobs import api
from plone.app.asyncjobs.engine.exceptions import BadStatusError
from plone.app.asyncjobs.engine.status import COMPLETED
from plone.app.asyncjobs.engine.status import NEW
from plone.app.asyncjobs.interfaces import IAsyncService
from plone.app.asyncjobs.interfaces import IQueueReady
from plone.app.asyncjobs.interfaces import IWorkerRole
from plone.app.asyncjobs.service.queues import DEFAULT_QUOTA
from plone.app.asyncjobs.service.queues import add_queue
from plone.app.asyncjobs.service.queues import configure_default_quota
from plone.app.asyncjobs.service.service import AsyncService
from plone.app.asyncjobs.testing import dispatcher_running
from plone.app.asyncjobs.tests import jobs
from plone.app.asyncjobs.waiting import wait_for_all_jobs
from plone.app.asyncjobs.waiting import wait_for_result
from plone.app.asyncjobs.worker.config import WorkerSettings
from plone.app.asyncjobs.worker.roles import MULTI_DB
from plone.app.asyncjobs.worker.roles import SINGLE_DB


USAGE = Path(__file__).with_name("usage_from_plone_app_async.txt")

#: The module the examples run in: workers load job functions by module
#: and name, so the functions the examples define must be found there.
USAGE_MODULE = "plone.app.asyncjobs.tests.usage_from_plone_app_async"


@pytest.fixture
def member_folder(portal):
    """A folder the test user (a Member) owns; Documents and Folders in
    the simple publication workflow, as in a Plone 4/5 site."""
    login(portal.aq_parent, SITE_OWNER_NAME)
    portal.portal_workflow.setChainForPortalTypes(
        ("Document", "Folder"), "simple_publication_workflow")
    portal.invokeFactory("Folder", "test-folder")
    folder = portal["test-folder"]
    folder.manage_setLocalRoles(TEST_USER_ID, ("Owner",))
    login(portal, TEST_USER_NAME)
    return folder


@pytest.fixture
def usage_module(monkeypatch):
    module = types.ModuleType(USAGE_MODULE)
    monkeypatch.setitem(sys.modules, USAGE_MODULE, module)
    return module


def test_plone_app_async_usage_examples_pass(portal, member_folder, usage_module):
    parser = doctest.DocTestParser()
    test = parser.get_doctest(USAGE.read_text(), {}, USAGE.name, str(USAGE), 0)
    usage_module.self = types.SimpleNamespace(portal=portal, folder=member_folder)
    test.globs = usage_module.__dict__
    output = []
    runner = doctest.DocTestRunner(
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    result = runner.run(test, out=output.append, clear_globs=False)
    assert result.failed == 0, "".join(output)
    assert result.attempted > 40


def test_the_interface_declares_every_public_method():
    public = {name for name in dir(AsyncService) if not name.startswith("_")}
    assert public <= set(IAsyncService.names())
    assert verifyObject(IAsyncService, AsyncService())


class RecordingService(AsyncService):
    """A site's own service: records what the api module asks of it."""

    def __init__(self):
        self.calls = []

    def put(self, job, **options):
        self.calls.append(("put", job))
        return super().put(job, **options)

    def getQueues(self, context=None):
        self.calls.append(("getQueues", context))
        return super().getQueues(context)


def test_api_goes_through_the_registered_utility(portal):
    service = RecordingService()
    site_manager = getSiteManager(portal)
    site_manager.registerUtility(service, IAsyncService)
    try:
        assert getUtility(IAsyncService) is service
        job = api.queue_job(jobs.add, portal, 1, b=2)
        api.get_queues()
        assert service.calls == [("put", job), ("getQueues", None)]
    finally:
        site_manager.unregisterUtility(service, IAsyncService)
    assert wait_for_result(job) == 3


def test_service_jobs_count_against_the_default_quota_of_size_one(portal):
    queue = api.get_queue()
    assert queue.quotas[DEFAULT_QUOTA].size == 1
    service_job = getUtility(IAsyncService).queueJob(jobs.add, portal, 1)
    api_job = api.queue_job(jobs.add, portal, 1)
    assert service_job.quota_names == (DEFAULT_QUOTA,)
    assert api_job.quota_names == ()
    assert wait_for_result(service_job) == 1


def in_a_day():
    return datetime.now(timezone.utc) + timedelta(days=1)


def test_a_pending_service_job_can_be_removed_as_in_zc_async(portal):
    # Its event callback is no job waiting for it (unlike its successor).
    queue = api.get_queue()
    service = getUtility(IAsyncService)
    first = service.queueJobWithDelay(None, in_a_day(), jobs.add, portal, 1)
    second = service.queueJob(jobs.add, portal, 2)  # held behind it
    with pytest.raises(BadStatusError, match="other jobs wait for"):
        queue.remove(first)
    first.cancel()
    transaction.commit()
    assert wait_for_result(second) == 2
    alone = service.queueJobWithDelay(None, in_a_day(), jobs.add, portal, 3)
    transaction.commit()
    queue.remove(alone)
    transaction.commit()
    assert alone.status == NEW and len(queue) == 0


def test_a_job_queued_after_a_rolled_back_one_is_queued(portal):
    # Held behind the job the rollback took away, it was never queued.
    service = getUtility(IAsyncService)
    savepoint = transaction.savepoint()
    service.queueJob(jobs.add, portal, 1)
    savepoint.rollback()
    after = service.queueJob(jobs.add, portal, 2)
    savepoint = transaction.savepoint()  # the record of the last jobs has one now
    service.queueJob(jobs.add, portal, 3)
    savepoint.rollback()
    last = service.queueJob(jobs.add, portal, 4)
    transaction.commit()
    assert wait_for_result(after) == 2 and wait_for_result(last) == 4


def test_a_new_queue_gets_the_default_quota(portal):
    queue = add_queue(api.get_queues(), "reports")
    assert queue.quotas[DEFAULT_QUOTA].size == 1


@pytest.mark.parametrize("size, expected", [(None, 4), (2, 2), (0, None)])
def test_configure_default_quota(portal, size, expected):
    queue = api.get_queue()
    queue.quotas[DEFAULT_QUOTA].size = 4
    configure_default_quota(queue, size)
    quota = queue.quotas.get(DEFAULT_QUOTA)
    assert (None if quota is None else quota.size) == expected


def test_configure_default_quota_creates_a_missing_one(portal):
    queue = api.get_queue()
    queue.quotas.remove(DEFAULT_QUOTA)
    configure_default_quota(queue)
    assert queue.quotas[DEFAULT_QUOTA].size == 1


def test_default_quota_size_zero_is_accepted():
    assert WorkerSettings.from_section({"default-quota-size": "0"}).default_quota_size == 0
    with pytest.raises(ValueError, match="at least 0"):
        WorkerSettings.from_section({"default-quota-size": "-1"})


def test_queue_ready_is_notified_when_a_dispatcher_activates(portal, integration):
    events = []
    registry = getGlobalSiteManager()
    registry.registerHandler(events.append, (IQueueReady,))
    try:
        with dispatcher_running(integration["zodbDB"]):
            pass
    finally:
        registry.unregisterHandler(events.append, (IQueueReady,))
    # More than one when the activating transaction conflicted and was retried.
    assert events and {event.object.name for event in events} == {""}


@pytest.fixture
def load_zcml(integration):
    zca.pushGlobalRegistry()
    context = zca.stackConfigurationContext(integration["configurationContext"])
    yield lambda name: xmlconfig.file(name, package=plone.app.asyncjobs, context=context)
    zca.popGlobalRegistry()


@pytest.mark.parametrize("filename, role", [
    ("single_db_worker.zcml", SINGLE_DB),
    ("multi_db_worker.zcml", MULTI_DB),
    ("single_db_instance.zcml", None),
    ("multi_db_instance.zcml", None),
])
def test_plone_app_async_zcml_file_names(portal, load_zcml, filename, role):
    load_zcml(filename)
    assert queryUtility(IWorkerRole) is role


def test_helpers_import_without_test_only_packages():
    """Job code and add-on tests in a buildout, where plone.app.testing
    and plone.testing are not installed."""
    code = (
        "import sys\n"
        "for name in ('plone.app.testing', 'plone.testing', 'pytest'):\n"
        "    sys.modules[name] = None\n"
        "from plone.app.asyncjobs.waiting import wait_for_all_jobs, wait_for_result\n"
        "from plone.app.asyncjobs.engine.testing import wait_for_result\n"
        "from plone.app.asyncjobs.engine.local import setLiveAnnotation\n"
        "from plone.app.asyncjobs.engine.progress import report_progress\n"
        "from plone.app.asyncjobs.interfaces import COMPLETED, IAsyncService\n"
        "from plone.app.asyncjobs import api\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_service_jobs_of_one_transaction_in_a_size_one_quota_start_in_order(portal):
    service = getUtility(IAsyncService)
    jobs_in_order = [service.queueJob(jobs.timed, portal, 0, str(number))
                     for number in range(5)]
    assert [job.status for job in jobs_in_order] == ["pending"] + ["new"] * 4
    assert len(api.get_queue()) == 1
    wait_for_all_jobs()
    starts = [job.result[1] for job in jobs_in_order]
    assert starts == sorted(starts)


def test_a_failed_job_still_lets_the_next_one_run(portal):
    service = getUtility(IAsyncService)
    failing = service.queueJob(jobs.fail, portal, "first fails")
    second = service.queueJob(jobs.add, portal, 1)
    assert wait_for_result(second) == 1
    assert failing.result.check(ValueError)


def test_a_second_queue_or_no_quota_is_not_ordered(portal):
    service = getUtility(IAsyncService)
    add_queue(api.get_queues(), "mail")
    first = service.queueJob(jobs.add, portal, 1)
    other_queue = service.queueJobInQueue("mail", None, jobs.add, portal, 2)
    no_quota = service.queueJobInQueue("", (), jobs.add, portal, 3)
    assert {first.status, other_queue.status, no_quota.status} == {"pending"}
    wait_for_all_jobs()


def test_retrying_a_predecessor_does_not_queue_its_successor_twice(portal):
    service = getUtility(IAsyncService)
    first = service.queueJob(jobs.add, portal, 1)
    second = service.queueJob(jobs.add, portal, 2)
    assert wait_for_result(second) == 2
    retried = api.get_queue().put(first.copy())
    assert wait_for_result(retried) == 1
    assert second.status == COMPLETED
