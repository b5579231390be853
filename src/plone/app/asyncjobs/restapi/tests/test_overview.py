"""``GET @asyncjobs``: queues with counts, dispatchers, the last hour."""
from datetime import timedelta

from plone.app.asyncjobs import api as jobs_api
from plone.app.asyncjobs.restapi.tests import wait_until_idle
from plone.app.asyncjobs.testing import wait_for_result
from plone.app.asyncjobs.tests import jobs


def test_overview(client, site, dispatcher):
    for job in (jobs_api.queue_job(jobs.add, site, 1), jobs_api.queue_job(jobs.fail, site, "x")):
        wait_for_result(job)
    jobs_api.queue_job(jobs.add, site, 1, delay=timedelta(hours=1))
    wait_until_idle(site)
    response = client.get()
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    overview = response.json()
    assert overview["@id"] == client.url()
    # Every queue has the quota service jobs count against (api jobs do not).
    assert overview["queues"] == [{
        "name": "", "quotas": {"default": {"filled": 0, "size": 1}}, "counts_capped": [],
        "counts": {"pending": 1, "active": 0, "completed": 1, "failed": 1}}]
    assert overview["last_hour"] == {"completed": 2, "failed": 1}
    [facts] = overview["dispatchers"]
    assert facts["uuid"] == str(dispatcher.uuid)
    assert facts["@id"] == client.url(f"dispatchers/{dispatcher.uuid}")
