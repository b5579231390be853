"""``@asyncjobs/dispatchers``: list, show, resize an agent, pause, resume;
the running dispatcher follows at its next poll."""
import pytest
import transaction

from plone.app.asyncjobs import api as jobs_api
from plone.app.asyncjobs.engine.status import PENDING
from plone.app.asyncjobs.engine.testing.waiting import wait_for_poll
from plone.app.asyncjobs.testing import wait_for_result
from plone.app.asyncjobs.tests import jobs


@pytest.fixture
def uuid(dispatcher):
    return str(dispatcher.uuid)


def lasting(facts):
    """A dispatcher's facts but those that change by the second."""
    return {key: value for key, value in facts.items()
            if key not in ("last_ping", "uptime_seconds")}


def agent_path(uuid, queue="_default_", agent="main"):
    return f"dispatchers/{uuid}/queues/{queue}/agents/{agent}"


def test_list_and_show(client, uuid):
    listed = client.get("dispatchers")
    assert listed.status_code == 200
    assert listed.json()["@id"] == client.url("dispatchers")
    [facts] = listed.json()["items"]
    assert facts["@id"] == client.url(f"dispatchers/{uuid}")
    assert facts["uuid"] == uuid
    assert facts["state"] == "alive"
    assert facts["paused"] is False
    assert facts["queues"] == {"": [{"@id": client.url(agent_path(uuid)), "name": "main",
                                     "size": 3, "jobs": []}]}
    assert lasting(client.get(f"dispatchers/{uuid}").json()) == lasting(facts)
    assert [lasting(d) for d in client.get().json()["dispatchers"]] == [lasting(facts)]


def test_unknown_dispatcher(client):
    response = client.get("dispatchers/no-such-uuid")
    assert response.status_code == 404
    assert response.json()["error"] == {"type": "NotFound",
                                        "message": "there is no dispatcher 'no-such-uuid'"}
    assert client.post("dispatchers/no-such-uuid/pause").status_code == 404
    assert client.post("dispatchers/no-such-uuid/resume").status_code == 404
    assert client.patch(agent_path("no-such-uuid"), json={"size": 1}).status_code == 404


def test_agent_size_reaches_the_running_dispatcher(client, uuid, dispatcher, site):
    response = client.patch(agent_path(uuid), json={"size": 1})
    assert response.status_code == 200
    assert response.json()["queues"][""][0]["size"] == 1
    assert client.get().json()["dispatchers"][0]["queues"][""][0]["size"] == 1
    assert wait_for_poll(dispatcher)[""]["main"]["size"] == 1
    # Size 0: the dispatcher starts nothing, until it has threads again.
    client.patch(agent_path(uuid), json={"size": 0})
    wait_for_poll(dispatcher)
    job = jobs_api.queue_job(jobs.add, site, 1, 2)
    client.get()  # commits the job
    wait_for_poll(dispatcher, count=3)
    transaction.begin()
    assert job.status == PENDING
    client.patch(agent_path(uuid), json={"size": 3})
    assert wait_for_result(job) == 3


@pytest.mark.parametrize("path, message", [
    (agent_path("{uuid}", agent="nope"),
     "dispatcher {uuid} has no agent 'nope' in queue ''"),
    (agent_path("{uuid}", queue="nope"), "there is no queue 'nope'"),
])
def test_unknown_agent_or_queue(client, uuid, path, message):
    response = client.patch(path.format(uuid=uuid), json={"size": 1})
    assert response.status_code == 404
    assert response.json()["error"]["message"] == message.format(uuid=uuid)


@pytest.mark.parametrize("body, field", [
    ({}, "size"),
    ({"size": "2"}, "size"),
    ({"size": 2.5}, "size"),
    ({"size": True}, "size"),
    ({"size": -1}, "size"),
    ({"size": 101}, "size"),
    ({"size": 2, "colour": "blue"}, "colour"),
    ([2], "body"),
])
def test_bad_agent_sizes(client, uuid, dispatcher, body, field):
    response = client.patch(agent_path(uuid), json=body)
    assert response.status_code == 400
    assert response.json()["error"]["field"] == field
    assert client.get(f"dispatchers/{uuid}").json()["queues"][""][0]["size"] == 3


def test_pause_and_resume(client, uuid, dispatcher, site):
    paused = client.post(f"dispatchers/{uuid}/pause")
    assert paused.status_code == 200
    assert paused.json()["paused"] is True
    assert client.get().json()["dispatchers"][0]["paused"] is True
    wait_for_poll(dispatcher)
    job = jobs_api.queue_job(jobs.add, site, 2, 2)
    client.get()  # commits the job
    wait_for_poll(dispatcher, count=3)
    transaction.begin()
    assert job.status == PENDING
    resumed = client.post(f"dispatchers/{uuid}/resume")
    assert resumed.json()["paused"] is False
    assert wait_for_result(job) == 4
