"""The facts and actions shared by the control panel and the REST API,
with jobs queued through the Plone service."""
from datetime import timedelta

import pytest
import requests
import transaction
from DateTime import DateTime
from plone.app.testing import SITE_OWNER_NAME
from plone.app.testing import SITE_OWNER_PASSWORD
from plone.app.testing import TEST_USER_ID

from plone.app.asyncjobs import api as jobs_api
from plone.app.asyncjobs import inspection
from plone.app.asyncjobs.access import DATABASE
from plone.app.asyncjobs.access import Scope
from plone.app.asyncjobs.engine.exceptions import BadStatusError
from plone.app.asyncjobs.engine.status import COMPLETED
from plone.app.asyncjobs.engine.status import PENDING
from plone.app.asyncjobs.engine.testing.waiting import wait_until
from plone.app.asyncjobs.testing import wait_for_all_jobs
from plone.app.asyncjobs.testing import wait_for_result
from plone.app.asyncjobs.tests import jobs


#: The scope of the test site's jobs.
SITE = Scope(("", "plone"))


def test_describe_names_the_function_user_and_context(portal, recorded_events):
    job = jobs_api.queue_job(jobs.fail, portal, "secret reason")
    wait_for_result(job)
    facts = inspection.describe(job, detail=True, traceback=True)
    assert facts["callable"] == "plone.app.asyncjobs.tests.jobs.fail"
    assert facts["queued_by"] == {"id": TEST_USER_ID, "user_folder": "/plone/acl_users",
                                  "anonymous": False}
    assert facts["context_path"] == "/plone"
    assert facts["state"] == "failed" and facts["outcome"] == "failed"
    assert facts["result"] == "builtins.ValueError: secret reason"
    assert "Traceback" in facts["traceback"] and facts["args"] == ["'secret reason'"]
    # The callback that notifies the outcome event is the service's own.
    assert len(job.callbacks) == 1 and facts["callbacks"] == []


def test_retry_runs_a_copy_in_the_same_context_as_the_same_user(portal, recorded_events):
    job = jobs_api.queue_job(jobs.describe, portal)
    first = wait_for_result(job)
    again = inspection.retry(job, "admin", portal)
    transaction.commit()
    second = wait_for_result(again)
    assert again.func is jobs.describe and again is not job
    assert second["user"] == first["user"] == TEST_USER_ID
    assert second["path"] == first["path"]
    # The copy notified its own outcome event, with its own job.
    assert [event for event in recorded_events if event["job_oid"] == again._p_oid]
    assert inspection.describe(job, detail=True)["retried_as"] == [inspection.job_id(again)]


def test_listing_filters_by_user_callable_and_text(portal):
    jobs_api.queue_job(jobs.add, portal, 1)
    jobs_api.queue_job(jobs.mark, portal, "needle")
    wait_for_all_jobs()
    queues = jobs_api.get_queues()

    def listed(**params):
        return [item["callable"] for item in
                inspection.JobQuery({"state": "completed", **params}).run(queues, SITE)["items"]]

    assert sorted(listed()) == ["plone.app.asyncjobs.tests.jobs.add",
                                "plone.app.asyncjobs.tests.jobs.mark"]
    assert listed(text="NEEDLE") == ["plone.app.asyncjobs.tests.jobs.mark"]
    assert listed(callable="jobs.add") == ["plone.app.asyncjobs.tests.jobs.add"]
    assert listed(user="someone-else") == []
    assert len(listed(user=TEST_USER_ID)) == 2


@pytest.mark.parametrize("params, field", [
    ({"state": "lost"}, "state"), ({"size": "0"}, "size"), ({"size": "x"}, "size"),
    ({"sort": "up"}, "sort"), ({"since": "yesterday"}, "since"), ({"after": "1"}, "after"),
])
def test_bad_listing_parameters_name_the_field(params, field):
    with pytest.raises(inspection.QueryError) as raised:
        inspection.JobQuery(params)
    assert raised.value.field == field


def _record(**values):
    from ZPublisher.HTTPRequest import record

    made = record()
    made.__dict__.update(values)
    return made


@pytest.mark.parametrize("params, field", [
    ({"size": float("inf")}, "size"), ({"size": 2.5}, "size"), ({"since": 5}, "since"),
    ({"until": 5}, "until"), ({"since": DateTime("2024/01/01")}, "since"),
    ({"after": 5}, "after"), ({"state": 5}, "state"),
])
def test_typed_listing_parameters_are_read_as_their_text(params, field):
    """Zope's typed parameters (``size:float=inf``, ``since:date=...``)
    give other values than strings: they are checked as text."""
    with pytest.raises(inspection.QueryError) as raised:
        inspection.JobQuery(params)
    assert raised.value.field == field
    query = inspection.JobQuery({"callable": 5, "text": 6, "user": 7, "size": 3,
                                 "queue": [5, _record(a="1")]})
    assert (query.callable, query.text, query.user, query.size) == ("5", "6", "7", 3)
    assert query.queues == ["5", "a: 1"]


@pytest.mark.parametrize("query, status, field", [
    ("size:float=inf", 400, "size"), ("since:int=5", 400, "since"),
    ("until:int=5", 400, "until"), ("since:date=2024/01/01", 400, "since"),
    ("after:int=5", 400, "after"), ("queue:int=5", 400, "queue"),
    ("queue.a:record=1", 400, "queue"), ("callable:int=5", 200, None),
    ("text:int=5", 200, None),
])
def test_the_rest_listing_answers_typed_parameters(functional, query, status, field):
    answer = requests.get(
        f"http://{functional['host']}:{functional['port']}/plone/@asyncjobs/jobs?{query}",
        auth=(SITE_OWNER_NAME, SITE_OWNER_PASSWORD), headers={"Accept": "application/json"},
        timeout=60)
    assert answer.status_code == status, answer.text
    if field is not None:
        assert answer.json()["error"]["field"] == field


def test_cancel_remove_and_the_overview(portal, integration):
    job = jobs_api.queue_job(jobs.add, portal, 1, delay=timedelta(hours=1))
    transaction.commit()
    assert job.status == PENDING
    inspection.cancel(job, "admin")
    transaction.commit()
    # Its event callback runs in the worker.
    wait_until(lambda: job.status == COMPLETED, sync=transaction.begin)
    assert job.status == COMPLETED and "cancelled by admin" in inspection.describe(job)["result"]
    with pytest.raises(BadStatusError):
        inspection.cancel(job, "admin")
    facts = inspection.overview(jobs_api.get_queues(), SITE)
    [queue] = [q for q in facts["queues"] if q["name"] == ""]
    assert queue["counts"]["failed"] == 1 and queue["counts"]["pending"] == 0
    [dispatcher] = facts["dispatchers"]
    assert dispatcher["uuid"] == str(integration["asyncjobsDispatcher"].uuid)
    assert dispatcher["state"] == "alive" and dispatcher["paused"] is False
    inspection.remove(job, "admin")
    transaction.commit()
    assert inspection.overview(jobs_api.get_queues(), SITE)["queues"][0]["counts"]["failed"] == 0
    with pytest.raises(LookupError):
        inspection.get_job(jobs_api.get_queues(), "not-a-number", SITE)


# -- what an administrator sees (issue 14 item 4) ------------------------------------------


def cancelled_job(portal):
    job = jobs_api.queue_job(jobs.add, portal, 1, delay=timedelta(hours=1))
    transaction.commit()
    inspection.cancel(job, "admin")
    transaction.commit()
    wait_until(lambda: job.status == COMPLETED, sync=transaction.begin)
    return job


def test_a_cancelled_job_says_so_with_its_reason_and_no_traceback(portal):
    job = cancelled_job(portal)
    facts = inspection.describe(job, detail=True, traceback=True)
    assert facts["state"] == "failed" and facts["outcome"] == "cancelled"
    assert facts["cancel_reason"] == "cancelled by admin"
    assert facts["traceback"] is None and facts["traceback_hidden"] is False
    failed = jobs_api.queue_job(jobs.fail, portal, "boom")
    wait_for_result(failed)
    facts = inspection.describe(failed, detail=True, traceback=True)
    assert facts["outcome"] == "failed" and facts["cancel_reason"] is None
    assert "Traceback" in facts["traceback"]


def test_the_engines_own_jobs_are_neither_listed_nor_counted(portal):
    """A cancel queues a job that resumes the cancelled job's callbacks; it
    is the engine's, and so is the callback that notifies events."""
    job = cancelled_job(portal)
    wait_for_all_jobs()
    queues = jobs_api.get_queues()
    for scope in (SITE, DATABASE):
        listed = [item["id"] for state in inspection.STATES
                  for item in inspection.JobQuery({"state": state}).run(queues, scope)["items"]]
        assert listed == [inspection.job_id(job)], scope
        [queue] = inspection.overview(queues, scope)["queues"]
        assert sum(queue["counts"].values()) == 1, (scope, queue["counts"])
        assert inspection.overview(queues, scope)["last_hour"] == {"completed": 1, "failed": 1}
    assert len(job.callbacks) == 1
    assert inspection.describe(job, detail=True)["callbacks"] == []


def test_retried_as_names_every_retry(portal):
    job = jobs_api.queue_job(jobs.add, portal, 1)
    wait_for_result(job)
    retries = [inspection.retry(job, "admin", portal) for _ in range(2)]
    transaction.commit()
    assert inspection.describe(job, detail=True)["retried_as"] == [
        inspection.job_id(retry) for retry in retries]
    assert inspection.describe(retries[0], detail=True)["retry_of"] == inspection.job_id(job)


def wait_for_result_of(job):
    wait_for_result(job)
    return job


def test_retry_refusal_says_what_retry_would_refuse(portal):
    pending = jobs_api.queue_job(jobs.add, portal, 1, delay=timedelta(hours=1))
    transaction.commit()
    assert "only a finished job" in inspection.retry_refusal(pending, portal)
    for job in (cancelled_job(portal), wait_for_result_of(jobs_api.queue_job(jobs.add, portal, 2))):
        assert inspection.retry_refusal(job, portal) is None


def test_long_arguments_and_results_are_shortened_once(portal):
    job = jobs_api.queue_job(jobs.add, portal, "x" * 500, "y" * 500)
    wait_for_result(job)
    facts = inspection.describe(job, detail=True)
    for text in facts["args"] + [facts["result"]]:
        assert len(text) == inspection.SHORT_LIMIT + len("[...TRUNCATED...]")
        assert text.endswith("[...TRUNCATED...]") and text.count("[...TRUNCATED...]") == 1
    # A failure's message too: it was served whole, 5 MB in every listing
    # and in every live poll of the console.
    failed = jobs_api.queue_job(jobs.fail, portal, "z" * 5000)
    wait_for_result(failed)
    text = inspection.describe(failed)["result"]
    assert len(text) == inspection.SHORT_LIMIT + len("[...TRUNCATED...]")


def test_a_job_whose_arguments_cannot_be_loaded_is_described(portal):
    # Its page, REST answer and any text search that reached it failed.
    from plone.app.asyncjobs.engine.testing.chaos import Unloadable

    job = jobs_api.queue_job(jobs.add, portal, Unloadable())
    wait_for_result(job)
    connection = portal._p_jar.db().open(transaction_manager=transaction.TransactionManager())
    try:
        stored = connection.get(job._p_oid)
        facts = inspection.describe(stored, detail=True)
        assert facts["args"][-1] == "<arguments cannot be loaded>" and facts["kwargs"] == {}
        assert "add" in inspection._text_of(stored)
        assert "arguments cannot be loaded" in inspection.retry_refusal(stored, portal)
    finally:
        connection.close()
