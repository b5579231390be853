"""``POST @asyncjobs/purge``: forget the jobs finished ``days`` days ago."""
import pytest

from plone.app.asyncjobs import api as jobs_api
from plone.app.asyncjobs.restapi.tests import wait_until_idle
from plone.app.asyncjobs.testing import wait_for_result
from plone.app.asyncjobs.tests import jobs


@pytest.fixture
def finished(site):
    done = [jobs_api.queue_job(jobs.add, site, n) for n in range(3)]
    done.append(jobs_api.queue_job(jobs.fail, site, "boom"))
    for job in done:
        wait_for_result(job)
    wait_until_idle(site)
    return done


def totals(client):
    return [client.get("jobs", params={"state": state}).json()["items_total"]
            for state in ("completed", "failed")]


def test_purge(client, finished):
    assert client.post("purge", json={"days": 1}).json() == {"removed": 0}
    assert totals(client) == [3, 1]
    response = client.post("purge", json={"days": 0})
    assert response.status_code == 200
    assert response.json() == {"removed": 4}
    assert totals(client) == [0, 0]


@pytest.mark.parametrize("body, field", [
    ({}, "days"),
    ({"days": "1"}, "days"),
    ({"days": True}, "days"),
    ({"days": -1}, "days"),
    ({"days": 10 ** 6}, "days"),
    ({"days": 1, "queue": ""}, "queue"),
    ("days=1", "body"),
])
def test_bad_purges(client, finished, body, field):
    response = client.post("purge", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["field"] == field
    assert totals(client) == [3, 1]
