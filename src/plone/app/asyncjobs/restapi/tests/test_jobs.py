"""``@asyncjobs/jobs``: listing, filters, batching, one job, retry, cancel,
delete, and their errors."""
import uuid
from datetime import datetime
from datetime import timedelta
from datetime import timezone
from urllib.parse import parse_qs
from urllib.parse import urlsplit

import pytest
import transaction
from plone.app.testing import TEST_USER_ID

from plone.app.asyncjobs import api as jobs_api
from plone.app.asyncjobs.engine.failure import is_failure
from plone.app.asyncjobs.engine.status import CALLBACKS
from plone.app.asyncjobs.engine.status import COMPLETED
from plone.app.asyncjobs.engine.status import PENDING
from plone.app.asyncjobs.inspection import job_id
from plone.app.asyncjobs.restapi.tests import wait_until_idle
from plone.app.asyncjobs.testing import wait_for_result
from plone.app.asyncjobs.tests import jobs


@pytest.fixture
def finished(site):
    """Five succeeded jobs (``add``, results 10 to 14) and two failed ones
    (``fail``), all finished."""
    succeeded = [jobs_api.queue_job(jobs.add, site, 10, b=n) for n in range(5)]
    failed = [jobs_api.queue_job(jobs.fail, site, f"boom {n}") for n in range(2)]
    for job in succeeded + failed:
        wait_for_result(job)
    wait_until_idle(site)
    return {"succeeded": succeeded, "failed": failed}


def ids(response):
    return [item["id"] for item in response.json()["items"]]


def ids_of(page):
    return [item["id"] for item in page["items"]]


def assert_latest_finished_first(items):
    ended = [item["ended"] for item in items]
    assert ended == sorted(ended, reverse=True)


def test_a_listing_page(client, finished, site):
    response = client.get("jobs", params={"state": "failed"})
    assert response.status_code == 200
    page = response.json()
    url = client.url("jobs?state=failed")
    assert page["@id"] == url
    assert page["batching"] == {"@id": url, "first": url}
    assert page["items_total"] == 2
    assert page["scanned"] == 2
    assert page["exhausted"] is False
    assert sorted(ids(response)) == sorted(job_id(job) for job in finished["failed"])
    assert_latest_finished_first(page["items"])
    [item] = [i for i in page["items"] if i["id"] == job_id(finished["failed"][1])]
    assert item["@id"] == client.url(f"jobs/{item['id']}")
    assert item["state"] == "failed"
    assert item["outcome"] == "failed"
    assert item["callable"] == "plone.app.asyncjobs.tests.jobs.fail"
    assert item["result"] == "builtins.ValueError: boom 1"
    assert item["queued_by"]["id"] == TEST_USER_ID
    assert item["context_path"] == "/plone"
    assert "args" not in item and "traceback" not in item  # only the job's own page has them


def test_pages_follow_the_next_links(client, finished):
    items = []
    url = client.url("jobs?state=completed&size=2")
    sizes = []
    while url:
        page = client.request("GET", url.removeprefix(client.url() + "/")).json()
        sizes.append(len(page["items"]))
        assert page["items_total"] == 5
        items.extend(page["items"])
        url = page["batching"].get("next")
        if url:
            query = parse_qs(urlsplit(url).query)
            assert query["state"] == ["completed"] and query["size"] == ["2"]
            assert query["after"] == [page["batching"]["next"].split("after=")[1]]
    assert sizes == [2, 2, 1]
    assert sorted(ids_of({"items": items})) == sorted(job_id(j) for j in finished["succeeded"])
    assert_latest_finished_first(items)
    reverse = ids(client.get("jobs", params={"state": "completed", "sort": "reverse"}))
    assert reverse == ids_of({"items": items})[::-1]


def test_filters(client, finished, site):
    def listed(**params):
        response = client.get("jobs", params={"state": "completed", **params})
        assert response.status_code == 200, response.text
        return response.json()

    everything = ids_of(listed())
    assert len(everything) == 5
    assert ids_of(listed(callable="tests.jobs.add")) == everything
    assert listed(callable="tests.jobs.fail")["items"] == []
    by_result = listed(text="13")  # the result of add(10, b=3), shown as 13
    assert ids_of(by_result) == [job_id(finished["succeeded"][3])]
    assert by_result["items_total"] is None  # filtered: not counted
    assert by_result["scanned"] == 5
    assert len(listed(user=TEST_USER_ID)["items"]) == 5
    assert listed(user="someone-else")["items"] == []
    assert len(listed(queue="_default_")["items"]) == 5
    later = (datetime.now(timezone.utc) + timedelta(minutes=1)).isoformat()
    assert listed(since=later)["items"] == []
    assert len(listed(until=later)["items"]) == 5


def test_pending_and_running_jobs(client, site):
    scheduled = jobs_api.queue_job(jobs.add, site, 1, delay=timedelta(hours=2))
    pending = client.get("jobs").json()  # state defaults to pending
    assert ids_of(pending) == [job_id(scheduled)]
    assert pending["items_total"] == 1
    assert pending["items"][0]["begin_after"] == scheduled.begin_after.isoformat()
    assert client.get("jobs", params={"state": "active"}).json()["items"] == []


@pytest.mark.parametrize("params, field", [
    ({"state": "finished"}, "state"),
    ({"sort": "sideways"}, "sort"),
    ({"size": "0"}, "size"),
    ({"size": "101"}, "size"),
    ({"size": "ten"}, "size"),
    ({"since": "yesterday"}, "since"),
    ({"until": "2026-13-01"}, "until"),
    ({"after": "not-a-cursor"}, "after"),
    ({"queue": "no-such-queue"}, "queue"),
    ({"colour": "blue"}, "colour"),
    ({"state": ["failed", "completed"]}, "state"),
])
def test_bad_listing_parameters(client, params, field):
    response = client.get("jobs", params=params)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "BadRequest"
    assert error["field"] == field
    assert error["message"].startswith(f"{field}: ")


def test_one_job(client, finished):
    job = finished["failed"][0]
    response = client.get(f"jobs/{job_id(job)}")
    assert response.status_code == 200
    facts = response.json()
    assert facts["@id"] == client.url(f"jobs/{job_id(job)}")
    assert facts["id"] == job_id(job)
    assert facts["args"] == ["'boom 0'"]
    assert facts["kwargs"] == {}
    assert "builtins.ValueError: boom 0" in facts["traceback"]
    assert facts["status"] == COMPLETED
    assert facts["dispatcher"] is not None


@pytest.mark.parametrize("job", ["999999999", "0", "-3", "abc", "1e3", "99999999999999999999999"])
def test_unknown_jobs(client, job):
    for method in ("GET", "DELETE"):
        response = client.request(method, f"jobs/{job}")
        assert response.status_code == 404
        assert response.json()["error"]["type"] == "NotFound"
    for action in ("retry", "cancel"):
        assert client.post(f"jobs/{job}/{action}").status_code == 404


def test_an_object_that_is_not_a_job_is_not_found(client, site):
    oid = int.from_bytes(site._p_oid, "big")
    response = client.get(f"jobs/{oid}")
    assert response.status_code == 404
    assert response.json()["error"]["message"] == f"there is no job {oid}"


def test_retry_runs_a_failed_job_again(client, site):
    key = uuid.uuid4().hex
    failed = jobs_api.queue_job(jobs.fail_first_call, site, key, retry_policy="never")
    assert is_failure(wait_for_result(failed))
    wait_until_idle(site)
    response = client.post(f"jobs/{job_id(failed)}/retry")
    assert response.status_code == 201
    retry = response.json()
    assert response.headers["Location"] == retry["@id"] == client.url(f"jobs/{retry['id']}")
    assert retry["retry_of"] == job_id(failed)
    assert retry["status"] == PENDING
    assert retry["callable"] == "plone.app.asyncjobs.tests.jobs.fail_first_call"
    new = jobs_api.get_queues(site)._p_jar.get(int(retry["id"]).to_bytes(8, "big"))
    assert wait_for_result(new) == 2  # ran again, and this time succeeded
    wait_until_idle(site)
    assert client.get(f"jobs/{job_id(failed)}").json()["retried_as"] == [retry["id"]]
    done = client.get(f"jobs/{retry['id']}").json()
    assert (done["outcome"], done["result"]) == ("succeeded", "2")


def test_only_finished_simple_jobs_can_be_retried(client, site):
    scheduled = jobs_api.queue_job(jobs.add, site, 1, delay=timedelta(hours=1))
    response = client.post(f"jobs/{job_id(scheduled)}/retry")
    assert response.status_code == 409
    assert response.json()["error"] == {
        "type": "Conflict",
        "message": "only a finished job can be retried; this one is pending"}
    composite = jobs_api.queue_serial_jobs(jobs_api.make_job(jobs.add, site, 1, 2))
    wait_for_result(composite)
    response = client.post(f"jobs/{job_id(composite)}/retry")
    assert response.status_code == 409
    assert "cannot be copied" in response.json()["error"]["message"]


def test_cancel_a_job_scheduled_in_the_future(client, site, dispatcher):
    scheduled = jobs_api.queue_job(jobs.mark, site, "ran", delay=timedelta(days=1))
    response = client.post(f"jobs/{job_id(scheduled)}/cancel")
    assert response.status_code == 200
    cancelled = response.json()
    assert cancelled["@id"] == client.url(f"jobs/{job_id(scheduled)}")
    # Its callbacks (the IJobFailure event) run in a worker, then it is completed.
    assert cancelled["status"] == CALLBACKS
    assert cancelled["result"].endswith("CancelledError: cancelled by admin")
    assert is_failure(wait_for_result(scheduled))
    wait_until_idle(site)
    assert client.get("jobs").json()["items"] == []
    assert ids_of(client.get("jobs", params={"state": "failed"}).json()) == [job_id(scheduled)]
    again = client.post(f"jobs/{job_id(scheduled)}/cancel")
    assert again.status_code == 409
    assert again.json()["error"]["message"] == (
        "only a pending or running job can be cancelled; this one is completed")
    assert not hasattr(site.aq_base, "_asyncjobs_mark")


def test_cancel_a_running_job_that_checks_for_it(client, site, dispatcher):
    key = uuid.uuid4().hex
    job = jobs_api.queue_job(jobs.wait_for_cancel, site, key, True)
    transaction.commit()
    try:
        assert jobs.gate(f"{key}/running").wait(30)
        response = client.post(f"jobs/{job_id(job)}/cancel")
        assert response.status_code == 200
        assert response.json()["cancel_reason"] is None  # asked, not yet done
        assert is_failure(wait_for_result(job))
        wait_until_idle(site)
        facts = client.get(f"jobs/{job_id(job)}").json()
        assert (facts["outcome"], facts["cancel_reason"], facts["traceback"]) == (
            "cancelled", "cancelled while running by admin", None)
    finally:
        jobs.gate(key).set()


def test_a_running_job_that_ignores_a_cancel_runs_on(client, site, dispatcher):
    key = uuid.uuid4().hex
    job = jobs_api.queue_job(jobs.wait_for_cancel, site, key, False)
    transaction.commit()
    try:
        assert jobs.gate(f"{key}/running").wait(30)
        asked = client.post(f"jobs/{job_id(job)}/cancel").json()
        assert asked["status"] == "active" and asked["cancel_requested"] is not None
        assert client.get(f"jobs/{job_id(job)}").json()["cancel_requested"] == \
            asked["cancel_requested"]
        again = client.post(f"jobs/{job_id(job)}/cancel").json()
        assert again["cancel_requested"] == asked["cancel_requested"]  # the first request
    finally:
        jobs.gate(key).set()
    assert wait_for_result(job) == "finished"
    wait_until_idle(site)
    facts = client.get(f"jobs/{job_id(job)}").json()
    assert (facts["outcome"], facts["cancel_requested"]) == ("succeeded", None)


def test_delete_a_finished_job(client, finished, site):
    job = finished["succeeded"][0]
    response = client.delete(f"jobs/{job_id(job)}")
    assert response.status_code == 204
    assert response.content == b""
    page = client.get("jobs", params={"state": "completed"}).json()
    assert job_id(job) not in ids_of(page)
    assert page["items_total"] == 4
    assert client.get(f"jobs/{job_id(job)}").status_code == 404
    assert client.delete(f"jobs/{job_id(job)}").status_code == 404


def test_purged_jobs_are_gone_but_callbacks_and_cancelled_jobs_stay(client, finished, site):
    job = finished["failed"][0]
    # The callback that notifies the outcome event is the service's own:
    # not listed among the job's callbacks, but there with its job.
    assert client.get(f"jobs/{job_id(job)}").json()["callbacks"] == []
    [callback] = job.callbacks
    assert client.get(f"jobs/{job_id(callback)}").json()["status"] == COMPLETED
    scheduled = jobs_api.queue_job(jobs.add, site, 1, delay=timedelta(hours=1))
    client.post(f"jobs/{job_id(scheduled)}/cancel")
    wait_for_result(scheduled)
    assert client.get(f"jobs/{job_id(scheduled)}").status_code == 200
    # The seven jobs and the cancelled one (the job that ran its callbacks
    # is the engine's own: no history keeps it).
    assert client.post("purge", json={"days": 0}).json() == {"removed": 8}
    for gone in (job_id(job), job_id(callback), job_id(scheduled)):
        assert client.get(f"jobs/{gone}").status_code == 404


def test_a_pending_job_cannot_be_deleted(client, site):
    scheduled = jobs_api.queue_job(jobs.add, site, 1, delay=timedelta(hours=1))
    response = client.delete(f"jobs/{job_id(scheduled)}")
    assert response.status_code == 409
    assert scheduled.status == PENDING


@pytest.mark.parametrize("options, status, field", [
    ({"data": "{not json", "headers": {"Content-Type": "application/json"}}, 400, "body"),
    ({"json": [1, 2]}, 400, "body"),
    ({"json": {"force": True}}, 400, "force"),
    ({"data": "{}", "headers": {"Content-Type": "text/plain"}}, 415, None),
    ({"data": "", "headers": {}}, 415, None),
])
def test_bad_action_requests_change_nothing(client, finished, options, status, field):
    job = finished["failed"][0]
    response = client.post(f"jobs/{job_id(job)}/retry", **options)
    assert response.status_code == status
    assert response.json()["error"].get("field") == field
    assert "retried_as" not in job.annotations
    assert client.get("jobs").json()["items"] == []
