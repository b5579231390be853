"""api.queue_job passes priority and unique keys to the engine, with clear errors."""
from datetime import timedelta

import pytest
import transaction

from plone.app.asyncjobs import api as jobs_api
from plone.app.asyncjobs.inspection import job_id
from plone.app.asyncjobs.service.queues import add_queue
from plone.app.asyncjobs.tests import jobs
from plone.app.asyncjobs.waiting import wait_for_result


def test_queue_job_with_a_priority(portal):
    job = jobs_api.queue_job(jobs.add, portal, 1, priority=3)
    assert job.priority == 3
    assert job._queue_key[0][0] == 3  # in the lanes of priority 3


@pytest.mark.parametrize("bad", ["high", 1.0, True])
def test_a_priority_that_is_not_an_integer_is_refused(portal, bad):
    with pytest.raises(TypeError, match="priority must be an integer"):
        jobs_api.queue_job(jobs.add, portal, 1, priority=bad)


def test_queue_job_with_a_unique_key_returns_the_pending_job(portal):
    first = jobs_api.queue_job(jobs.add, portal, 1, unique_key="reindex /plone")
    again = jobs_api.queue_job(jobs.add, portal, 2, unique_key="reindex /plone")
    assert again is first and len(jobs_api.get_queue()) == 1
    with pytest.raises(jobs_api.DuplicateJobError) as raised:
        jobs_api.queue_job(jobs.add, portal, 3, unique_key="reindex /plone",
                           on_duplicate="raise")
    assert raised.value.job is first
    active = jobs_api.queue_job(jobs.add, portal, 4, unique_key="other",
                                unique_while=("pending", "active"))
    assert active.unique_while == ("pending", "active")


@pytest.mark.parametrize("options, error, message", [
    ({"unique_key": ""}, ValueError, "unique_key must not be empty"),
    ({"unique_key": 7}, TypeError, "unique_key must be a string"),
    ({"unique_key": "k", "unique_while": ("running",)}, ValueError, "unique_while must be"),
    ({"unique_key": "k", "on_duplicate": "skip"}, ValueError, "on_duplicate must be one of"),
])
def test_bad_unique_options_are_refused(portal, options, error, message):
    with pytest.raises(error, match=message):
        jobs_api.queue_job(jobs.add, portal, 1, **options)
    assert len(jobs_api.get_queue()) == 0


def test_a_job_put_after_its_quota_predecessor_keeps_its_options(portal):
    queue = add_queue(jobs_api.get_queues(), "serial")
    queue.quotas.create("one", size=1)
    first = jobs_api.queue_job(jobs.add, portal, 1, queue="serial", quota_names=("one",))
    second = jobs_api.queue_job(jobs.add, portal, 2, queue="serial", quota_names=("one",),
                                priority=2, unique_key="second")
    assert second is not first and second.status == "new"  # put once first completed
    assert (second.priority, second.unique_key) == (2, "second")


def test_the_job_page_shows_priority_and_unique_key(functional, functional_portal):
    from plone.app.asyncjobs.tests.test_controlpanel import open_browser
    from plone.app.asyncjobs.tests.test_controlpanel import page_url
    from plone.app.asyncjobs.tests.test_controlpanel import tree

    job = jobs_api.queue_job(jobs.add, functional_portal, 1, delay=timedelta(hours=1),
                             priority=4, unique_key="reindex /plone")
    transaction.commit()
    browser = open_browser(functional)
    browser.open(page_url(functional_portal, "asyncjobs-job", id=job_id(job)))
    page = tree(browser)
    assert page.cssselect("#asyncjobs-job-priority")[0].text_content().strip() == "4"
    assert page.cssselect("#asyncjobs-job-unique-key code")[0].text == "reindex /plone"


def test_a_job_put_after_its_quota_predecessor_is_checked_as_any_put(portal):
    """At the call, with the errors of the first job of the transaction:
    its unique key (the holder returned, or DuplicateJobError), on_duplicate
    and arguments that cannot be stored."""
    queue = add_queue(jobs_api.get_queues(), "serial")
    queue.quotas.create("one", size=1)
    holder = jobs_api.queue_job(jobs.add, portal, 0, queue="serial", unique_key="k")
    jobs_api.queue_job(jobs.add, portal, 1, queue="serial", quota_names=("one",))

    def held(*args, **options):
        return jobs_api.queue_job(jobs.add, portal, *args, queue="serial",
                                  quota_names=("one",), **options)

    with pytest.raises(jobs_api.DuplicateJobError) as raised:
        held(2, unique_key="k", on_duplicate="raise")
    assert raised.value.job is holder
    assert held(3, unique_key="k") is holder
    with pytest.raises(ValueError, match="on_duplicate must be one of"):
        held(4, on_duplicate="explode")
    with pytest.raises(ValueError, match="cannot be stored"):
        held(lambda: 5)
    transaction.abort()


def test_jobs_held_behind_one_that_is_not_queued_are_queued_in_its_place(portal, gate_key):
    # b's unique key is taken while it is held behind a: b is not queued
    # (the holder does the work), and c, held behind b, was never queued.
    queue = add_queue(jobs_api.get_queues(), "serial")
    queue.quotas.create("one", size=1)

    def in_series(*args, **options):
        return jobs_api.queue_job(*args, queue="serial", quota_names=("one",), **options)

    first = in_series(jobs.report_and_wait, portal, gate_key)
    second = in_series(jobs.add, portal, 2, unique_key="k")
    third = in_series(jobs.add, portal, 3)
    transaction.commit()
    holder = jobs_api.queue_job(jobs.add, portal, 9, queue="serial", unique_key="k",
                                delay=timedelta(hours=1))
    transaction.commit()
    jobs.gate(gate_key).set()
    assert wait_for_result(third) == 3
    assert wait_for_result(first) == 3 and second.status == "new"
    assert holder.status == "pending"
