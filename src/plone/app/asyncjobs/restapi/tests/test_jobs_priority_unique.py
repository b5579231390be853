"""The REST job serialisation shows a job's priority and unique key."""
from plone.app.asyncjobs import api as jobs_api
from plone.app.asyncjobs.inspection import job_id
from plone.app.asyncjobs.restapi.tests import wait_until_idle
from plone.app.asyncjobs.testing import wait_for_result
from plone.app.asyncjobs.tests import jobs


def test_a_job_shows_its_priority_and_unique_key(client, site):
    job = jobs_api.queue_job(jobs.add, site, 1, priority=2, unique_key="reindex /plone")
    plain = jobs_api.queue_job(jobs.add, site, 2)
    wait_for_result(job)
    wait_for_result(plain)
    wait_until_idle(site)
    facts = client.get(f"jobs/{job_id(job)}").json()
    assert (facts["priority"], facts["unique_key"]) == (2, "reindex /plone")
    facts = client.get(f"jobs/{job_id(plain)}").json()
    assert (facts["priority"], facts["unique_key"]) == (0, None)
