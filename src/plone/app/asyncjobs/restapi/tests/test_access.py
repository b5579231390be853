"""Who may use the REST API: every endpoint refuses anonymous users (401)
and users without 'Manage jobs' (403), tells them nothing about jobs, and
changes nothing for them; Managers and Site Administrators are served."""
from datetime import timedelta

import pytest

from plone.app.asyncjobs import api as jobs_api
from plone.app.asyncjobs.inspection import job_id
from plone.app.asyncjobs.restapi.services.routes import ROUTES
from plone.app.asyncjobs.restapi.services.routes import VALUE
from plone.app.asyncjobs.testing import wait_for_result
from plone.app.asyncjobs.tests import jobs


SECRET = "s3cret-7f1c9a"

REFUSALS = {
    None: (401, {"error": {"type": "Unauthorized", "message": "log in to manage jobs"}}),
    "member": (403, {"error": {
        "type": "Forbidden",
        "message": "managing jobs needs the permission 'plone.app.asyncjobs: Manage jobs'"}}),
}


@pytest.fixture
def secret_jobs(site):
    """Jobs whose arguments and results hold :data:`SECRET`: one succeeded,
    one failed, one scheduled for tomorrow."""
    succeeded = jobs_api.queue_job(jobs.add, site, SECRET, b="-sum")
    failed = jobs_api.queue_job(jobs.fail, site, SECRET)
    wait_for_result(succeeded)
    wait_for_result(failed)
    scheduled = jobs_api.queue_job(jobs.add, site, SECRET, b="-later", delay=timedelta(days=1))
    return {"succeeded": succeeded, "failed": failed, "scheduled": scheduled}


def every_endpoint(job, dispatcher):
    """``(method, path, json body)`` of each route, about ``job`` and the
    agent ``main`` of ``dispatcher`` in the default queue."""
    values = {"jobs": [job_id(job)],
              "dispatchers": [str(dispatcher.uuid), "_default_", "main"],
              "schedules": ["any-schedule"]}
    for method, pattern, _ in ROUTES:
        fill = iter(values.get(pattern[0], ()) if pattern else ())
        path = "/".join(next(fill) if part is VALUE else part for part in pattern)
        body = {"size": 1} if method == "PATCH" else None
        if pattern == ("purge",):
            body = {"days": 0}
        yield method, path, body


def state_of(jobs_by_name, site):
    queue = jobs_api.get_queue(context=site)
    [record] = queue.dispatchers.values()
    return ({name: (job.status, job.result if name != "failed" else str(job.result))
             for name, job in jobs_by_name.items()},
            record["main"].size, record.paused, len(list(queue)),
            sorted(job_id(job) for job in record["main"].completed))


@pytest.mark.parametrize("user", [None, "member"])
def test_every_endpoint_refuses_and_reveals_nothing(client_as, secret_jobs, dispatcher, site,
                                                     user):
    status, body = REFUSALS[user]
    before = state_of(secret_jobs, site)
    refused = client_as(user)
    requests_made = 0
    for job in secret_jobs.values():
        for method, path, json_body in every_endpoint(job, dispatcher):
            response = refused.request(method, path, json=json_body)
            requests_made += 1
            assert (response.status_code, response.json()) == (status, body), (method, path)
            assert SECRET not in response.text
            assert "Location" not in response.headers
    assert requests_made == 3 * len(ROUTES)
    assert state_of(secret_jobs, site) == before


def test_the_secret_would_show_to_a_manager(client, secret_jobs):
    """The refusal test above would see a leak: the secret is in the jobs."""
    for job in secret_jobs.values():
        assert SECRET in client.get(f"jobs/{job_id(job)}").text


@pytest.mark.parametrize("user", [None, "member"])
def test_a_refused_user_cannot_tell_jobs_from_unknown_ids(client_as, secret_jobs, user):
    refused = client_as(user)
    known = refused.get(f"jobs/{job_id(secret_jobs['failed'])}")
    unknown = refused.get("jobs/999999999")
    nonsense = refused.get("no/such/endpoint")
    assert known.json() == unknown.json() == nonsense.json() == REFUSALS[user][1]


@pytest.mark.parametrize("user", ["admin", "siteadmin"])
def test_managers_and_site_administrators_are_served(client_as, secret_jobs, dispatcher, user):
    served = client_as(user)
    assert served.get().status_code == 200
    failed = served.get(f"jobs/{job_id(secret_jobs['failed'])}")
    assert failed.status_code == 200
    assert SECRET in failed.json()["result"]
    uuid = str(dispatcher.uuid)
    assert served.get(f"dispatchers/{uuid}").status_code == 200


def test_only_managers_see_tracebacks(client_as, secret_jobs):
    path = f"jobs/{job_id(secret_jobs['failed'])}"
    assert SECRET in client_as("admin").get(path).json()["traceback"]
    hidden = client_as("siteadmin").get(path).json()
    assert hidden["traceback"] is None and hidden["traceback_hidden"] is True


def test_only_managers_pause_and_resume_dispatchers(client_as, dispatcher):
    uuid = str(dispatcher.uuid)
    refused = client_as("siteadmin").post(f"dispatchers/{uuid}/pause")
    assert refused.status_code == 403 and "Manage workers" in refused.json()["error"]["message"]
    admin = client_as("admin")
    assert admin.post(f"dispatchers/{uuid}/pause").json()["paused"] is True
    assert admin.post(f"dispatchers/{uuid}/resume").json()["paused"] is False
