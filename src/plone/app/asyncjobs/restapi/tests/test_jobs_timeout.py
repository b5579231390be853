"""The REST job serialisation shows a job's time limit."""
from plone.app.asyncjobs import api as jobs_api
from plone.app.asyncjobs.inspection import job_id
from plone.app.asyncjobs.restapi.tests import wait_until_idle
from plone.app.asyncjobs.testing import wait_for_result
from plone.app.asyncjobs.tests import jobs


def test_a_job_shows_its_time_limit(client, site):
    limited = jobs_api.queue_job(jobs.add, site, 1, timeout=45)
    free = jobs_api.queue_job(jobs.add, site, 2)
    wait_for_result(limited)
    wait_for_result(free)
    wait_until_idle(site)
    assert client.get(f"jobs/{job_id(limited)}").json()["timeout"] == 45
    assert client.get(f"jobs/{job_id(free)}").json()["timeout"] is None
