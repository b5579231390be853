"""zc.async's spellings: aliases on jobs and in ``local``, status values."""
import pytest

from plone.app.asyncjobs.engine import local
from plone.app.asyncjobs.engine import status
from plone.app.asyncjobs.engine.callback import SuccessFailureCallback
from plone.app.asyncjobs.engine.job import Job
from plone.app.asyncjobs.engine.testing import wait_for_result
from plone.app.asyncjobs.engine.testing import wait_until
from plone.app.asyncjobs.engine.tests import jobs


#: What each zc.async-style hook saw, in order.
calls = []


class LegacyHookedJob(Job):
    """Written for zc.async: overrides setUp/tearDown and calls super()."""

    def setUp(self):
        calls.append("setUp")
        return ("info", super().setUp())

    def tearDown(self, setup_info):
        calls.append(("tearDown", setup_info))
        super().tearDown(setup_info)


class BothSpellingsJob(Job):
    """Defines both spellings: the engine keeps calling set_up."""

    def set_up(self):
        calls.append("set_up")

    def setUp(self):
        calls.append("setUp")


@pytest.fixture(autouse=True)
def clear_calls():
    del calls[:]


def test_callback_aliases_are_the_engine_methods():
    job = Job(jobs.add, 1, 2)
    callback = job.addCallback(jobs.echo)
    proxy = job.addCallbacks(success=jobs.double)
    assert job.callbacks == (callback, proxy)
    assert isinstance(proxy, SuccessFailureCallback)
    chained = proxy.addCallback(jobs.echo)
    assert proxy.callbacks == [(chained, {})]
    assert job.getRetryPolicy() is job.get_retry_policy()


def test_assigner_uuid_alias_reads_and_writes_the_same_attribute():
    job = Job(jobs.add, 1, 2)
    job.assignerUUID = "abc"
    assert job.assigner_uuid == "abc"
    job.assigner_uuid = "def"
    assert job.assignerUUID == "def"


class EngineHookedJob(Job):
    """Written for this engine: overrides set_up/tear_down."""

    def set_up(self):
        calls.append("set_up")
        return "set_up info"

    def tear_down(self, setup_info):
        calls.append(("tear_down", setup_info))


def test_set_up_and_tear_down_call_the_engine_hooks():
    job = EngineHookedJob(jobs.add, 1, 2)
    assert job.setUp() == "set_up info"
    job.tearDown("set_up info")
    assert calls == ["set_up", ("tear_down", "set_up info")]


def test_a_zc_async_subclass_has_its_hooks_run_by_the_engine(dispatcher, queue):
    job = queue.put(LegacyHookedJob(jobs.add, 1, 2))
    queue._p_jar.transaction_manager.commit()
    assert wait_for_result(job) == 3
    wait_until(lambda: len(calls) == 2)
    assert calls == ["setUp", ("tearDown", ("info", None))]


def test_a_class_with_both_spellings_keeps_its_set_up():
    BothSpellingsJob(jobs.add, 1, 2).set_up()
    assert calls == ["set_up"]


def test_handle_interrupt_and_resume_callbacks_are_aliases():
    job = Job(jobs.add, 1, 2)
    assert job.handleInterrupt.__doc__ == "zc.async's spelling of :meth:`interrupted`."
    assert job.resumeCallbacks.__doc__ == "zc.async's spelling of :meth:`resume_callbacks`."


def test_local_has_zc_async_names():
    assert local.getJob is local.get_job
    assert local.setLiveAnnotation is local.set_live_annotation
    assert local.getLiveAnnotation is local.get_live_annotation
    assert local.getQueue is local.get_queue
    assert local.getDispatcher is local.get_dispatcher
    assert local.getAgentName is local.get_agent_name
    assert local.getReactor is local.get_reactor


def test_zc_async_status_values_cover_every_status():
    assert set(status.ZC_ASYNC_VALUES) == set(status.ALL)
    assert status.ZC_ASYNC_VALUES[status.COMPLETED] == "completed-status"
