"""End to end: the buildout deployment with real processes.

Builds a buildout (base.cfg) in a temporary directory, with the eggs cached
in ``.cache/buildout-eggs`` of the checkout (the first build downloads
Plone: a few minutes; later ones take seconds), starts a ZEO server, one
instance and one worker as separate Zope processes on free ports, creates
a Plone site with the add-on and a non-Manager user, queues a job over
HTTP as that user and checks that the worker ran it.

Select it with ``pytest -m deployment``; leave it out with
``-m 'not deployment'``.
"""
import base64
import collections
import json
import re
import time
import urllib.error
from datetime import datetime
from datetime import timedelta
from datetime import timezone
import urllib.parse
import urllib.request

import pytest

from plone.app.asyncjobs import deployment as deploy
from plone.app.asyncjobs.engine.dispatcher import process_alive


pytestmark = pytest.mark.deployment

E2E_ZCML = '<include package="plone.app.asyncjobs.tests" file="deployment.zcml" />'


@pytest.fixture(scope="module", params=["base.cfg", "multi_db.cfg"])
def running(request, tmp_path_factory):
    names = ["http-instance", "monitor-instance", "http-worker", "monitor-worker",
             "zeo-port"]
    ports = dict(zip(names, deploy.free_ports(len(names))))
    dep = deploy.Deployment(tmp_path_factory.mktemp("buildout"), ports=ports,
                            instance_zcml=E2E_ZCML, worker_zcml=E2E_ZCML,
                            layout=request.param)
    timings = {}
    try:
        started = time.monotonic()
        dep.buildout()
        timings["buildout"] = time.monotonic() - started
        started = time.monotonic()
        dep.start()
        timings["start"] = time.monotonic() - started
        yield dep
    finally:
        dep.stop()
        leftovers = [pid for pid in dep._own_processes() if deploy._alive(pid)]
        assert leftovers == [], f"processes still running: {leftovers}"
        for port in ports.values():
            assert not deploy.port_open(dep.host, port), f"port {port} still open"
        print(f"deployment timings ({request.param}):", {k: round(v, 1) for k, v in timings.items()})


def with_auth(url, user):
    request = urllib.request.Request(url)
    if user is not None:
        token = base64.b64encode(f"{user[0]}:{user[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    return request


def get(url, user=None, timeout=60):
    with urllib.request.urlopen(with_auth(url, user), timeout=timeout) as response:
        return response.status, response.read().decode()


def test_job_queued_over_http_runs_in_the_worker(running):
    dep = running
    user = deploy.TEST_USER
    site_url = dep.url("instance", deploy.SITE_ID)

    # The user is no Manager: the control panel sends them to the login form.
    try:
        answer = urllib.request.urlopen(with_auth(site_url + "/@@overview-controlpanel",
                                                  user), timeout=60)
        answer.read()
        assert answer.url.endswith(("insufficient-privileges", "require_login")), answer.url
    except urllib.error.HTTPError as refused:
        assert refused.code in (401, 403)
    # ... and the admin gets it.
    status, _ = get(site_url + "/@@overview-controlpanel", deploy.ADMIN)
    assert status == 200

    status, body = get(site_url + "/@@asyncjobs-e2e-queue?id=e2e-doc", user)
    answered = datetime.now(timezone.utc)  # the queuing transaction committed before
    assert status == 200
    queued = json.loads(body)
    # base.cfg: queues in the main database; multi_db.cfg: in "async".
    assert queued["database"] == ("async" if dep.layout == "multi_db.cfg" else "main")

    deadline = time.monotonic() + 120
    while True:
        _, body = get(f"{site_url}/@@asyncjobs-e2e-job?oid={queued['oid']}", user)
        state = json.loads(body)
        if state["status"] == "completed" or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert state["status"] == "completed", (state, dep.log_tail("worker"))
    assert not state["failed"], state["result"]
    result = state["result"]

    assert result["site_url"] == site_url
    assert result["document_url"] == site_url + "/e2e-doc"
    assert result["creators"] == [user[0]]
    assert result["user"] == user[0]
    # It ran in the worker, not in the instance that queued it.
    worker_uuid = (dep.directory / "var" / "worker-uuid.txt").read_text().split()[0]
    assert result["uuid"] == worker_uuid
    assert result["pid"] == dep.pid("worker")
    assert result["pid"] != queued["pid"]

    # The idle worker was told of the job (it polls every 10 s only).
    seen = deploy.monitor_json(dep.host, dep.ports["monitor-worker"],
                               f"async job {queued['oid']} {queued['database']}")
    assert seen["pickup"] == "push", seen
    started = datetime.strptime(seen["started"], "%Y-%m-%dT%H:%M:%S.%fZ")
    after_answer = started.replace(tzinfo=timezone.utc) - answered
    print(f"pickup ({dep.layout}): the worker started the job "
          f"{timedelta(**seen['pickup latency']).total_seconds() * 1000:.1f} ms after "
          f"the queuing commit ({after_answer.total_seconds() * 1000:.1f} ms after the "
          "HTTP answer arrived)")

    # The document is there, seen through the instance.
    status, body = get(site_url + "/e2e-doc", user)
    assert status == 200 and "Document e2e-doc" in body


def test_worker_monitor_lists_its_dispatcher_active(running):
    dep = running
    worker_uuid = (dep.directory / "var" / "worker-uuid.txt").read_text().split()[0]
    report = deploy.monitor_json(dep.host, dep.ports["monitor-worker"], "asyncdb status")
    dispatchers = report[""]["dispatchers"]
    assert dispatchers[worker_uuid]["state"] == "alive", report
    # The instance's monitor reads the same database.
    report = deploy.monitor_json(dep.host, dep.ports["monitor-instance"], "asyncdb status")
    assert report[""]["dispatchers"][worker_uuid]["state"] == "alive"


def test_each_log_line_is_written_once(running):
    """Plone's and the add-on's messages reach the event log once, not also
    through a second handler (see deployment/wsgi-logging.ini)."""
    for part in ("instance", "worker"):
        lines = running.log_tail(part, chars=100_000).splitlines()
        assert any("[plone.app.asyncjobs" in line for line in lines), part
        repeated = [line for line, count in collections.Counter(lines).items() if count > 1]
        assert repeated == [], f"{part}: {repeated[:3]}"


def dispatcher_state_in_control_panel(dep, worker_uuid):
    """The worker's state as the instance's job control panel shows it."""
    _, body = get(dep.url("instance", deploy.SITE_ID) + "/@@asyncjobs-controlpanel",
                  deploy.ADMIN)
    found = re.search(rf'data-dispatcher="{worker_uuid}"[^>]*data-dispatcher-state="(\w+)"',
                      body)
    return found and found.group(1)


def test_worker_stop_deactivates_its_dispatcher_cleanly(running):
    """Runs last for each layout: it stops the worker (bin/worker stop, SIGTERM)."""
    dep = running
    worker_uuid = (dep.directory / "var" / "worker-uuid.txt").read_text().split()[0]
    assert dispatcher_state_in_control_panel(dep, worker_uuid) == "alive"
    pid = dep.pid("worker")
    dep._ctl("worker", "stop", timeout=120)
    deadline = time.monotonic() + 60
    while process_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not process_alive(pid), dep.log_tail("worker")
    report = deploy.monitor_json(dep.host, dep.ports["monitor-instance"], "asyncdb status")
    assert report[""]["dispatchers"][worker_uuid]["state"] == "deactivated", report
    assert dispatcher_state_in_control_panel(dep, worker_uuid) == "deactivated"
    log = dep.log_tail("worker", chars=100_000)
    assert "SIGTERM: stopping the job worker" in log
    assert f"dispatcher {worker_uuid} deactivated" in log
