"""api.queue_job passes a job's time limit to the engine, with clear errors;
the job page shows it."""
from datetime import timedelta

import pytest
import transaction

from plone.app.asyncjobs import api as jobs_api
from plone.app.asyncjobs.engine.exceptions import JobTimeoutError
from plone.app.asyncjobs.engine.failure import is_failure
from plone.app.asyncjobs.inspection import job_id
from plone.app.asyncjobs.service import queues as queue_service
from plone.app.asyncjobs.service.queues import add_queue
from plone.app.asyncjobs.testing import wait_for_result
from plone.app.asyncjobs.tests import jobs
from plone.app.asyncjobs.worker.config import WorkerSettings


def test_queue_job_with_a_timeout(portal):
    assert jobs_api.queue_job(jobs.add, portal, 1, timeout=30).timeout == 30
    assert jobs_api.queue_job(jobs.add, portal, 2).timeout is None


@pytest.mark.parametrize("bad, error", [(0, ValueError), (-5, ValueError), ("30", TypeError)])
def test_a_bad_timeout_is_refused(portal, bad, error):
    with pytest.raises(error, match="timeout must be"):
        jobs_api.queue_job(jobs.add, portal, 1, timeout=bad)
    assert len(jobs_api.get_queue()) == 0


def test_a_job_put_after_its_quota_predecessor_keeps_its_timeout(portal):
    queue = add_queue(jobs_api.get_queues(), "serial")
    queue.quotas.create("one", size=1)
    jobs_api.queue_job(jobs.add, portal, 1, queue="serial", quota_names=("one",))
    second = jobs_api.queue_job(jobs.add, portal, 2, queue="serial", quota_names=("one",),
                                timeout=12.5)
    assert second.status == "new" and second.timeout == 12.5  # put once the first completed
    with pytest.raises(ValueError, match="timeout must be"):
        jobs_api.queue_job(jobs.add, portal, 3, queue="serial", quota_names=("one",),
                           timeout=-1)


def test_the_configured_time_limits_apply_to_new_queues(portal, monkeypatch):
    configured = WorkerSettings(default_timeout=90, timeout_grace=3)
    monkeypatch.setattr(queue_service, "worker_settings", lambda: configured)
    queue = add_queue(jobs_api.get_queues(), "limited")
    assert (queue.default_timeout, queue.timeout_grace) == (90, 3)
    queue_service.configure_time_limits(queue, WorkerSettings(default_timeout=0))
    assert (queue.default_timeout, queue.timeout_grace) == (None, 3)  # 0: no limit


def test_the_job_page_shows_the_time_limit(functional, functional_portal):
    from plone.app.asyncjobs.tests.test_controlpanel import open_browser
    from plone.app.asyncjobs.tests.test_controlpanel import page_url
    from plone.app.asyncjobs.tests.test_controlpanel import tree

    limited = jobs_api.queue_job(jobs.add, functional_portal, 1, delay=timedelta(hours=1),
                                 timeout=45)
    free = jobs_api.queue_job(jobs.add, functional_portal, 2, delay=timedelta(hours=1))
    transaction.commit()
    browser = open_browser(functional)
    browser.open(page_url(functional_portal, "asyncjobs-job", id=job_id(limited)))
    shown = tree(browser).cssselect("#asyncjobs-job-timeout")[0].text_content().split()
    assert shown == ["45", "s"]
    browser.open(page_url(functional_portal, "asyncjobs-job", id=job_id(free)))
    assert tree(browser).cssselect("#asyncjobs-job-timeout")[0].text_content().strip() == "\u2014"


def test_a_plone_job_past_its_limit_and_grace_is_interrupted(functional, functional_portal,
                                                             gate_key):
    queue = jobs_api.get_queue()
    grace, queue.timeout_grace = queue.timeout_grace, 0.2
    try:
        job = jobs_api.queue_job(jobs.wait_for_cancel, functional_portal, gate_key, False,
                                 timeout=0.2)
        transaction.commit()
        assert jobs.gate(f"{gate_key}/running").wait(30)
        result = wait_for_result(job)
        assert is_failure(result) and result.check(JobTimeoutError)
        # Abandoned, then interrupted: it ends long before its own 30 s
        # deadline, its gate never opened.
        assert jobs.gate(f"{gate_key}/ended").wait(20)
        assert not jobs.gate(gate_key).is_set()
        # The thread that replaced it runs the next job in the site.
        described = wait_for_result(jobs_api.queue_job(jobs.describe, functional_portal))
        assert described["site"] == "/".join(functional_portal.getPhysicalPath())
    finally:
        transaction.begin()
        queue.timeout_grace = grace
        transaction.commit()
