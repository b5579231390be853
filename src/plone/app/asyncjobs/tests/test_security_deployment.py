"""Issue #11 replayed over HTTP against real Zope processes: two sites, one
database, one worker.

The buildout deployment of ``test_deployment.py`` (base.cfg: ZEO server,
instance, worker), with ``/Plone`` and a second site ``/Other`` whose
Site Administrator is a user of ``/Other`` only.  The Manager of the Zope
root queues a job in each site; the job reports the roles it ran with.
``/Other``'s Site Administrator then tries what the issue reports: reading
``/Plone``'s job (404), pausing the shared worker (403), retrying the
Manager's jobs, from ``/Other`` and within ``/Other`` (refused), through
the REST API and through the control panel.  In the end no job but the
Manager's own two ever ran with the Manager role.

Select it with ``pytest -m deployment`` and run it alone on the machine
(``flock /tmp/coord/deployment.lock ...``).
"""
import os
import re
import subprocess
import time
from pathlib import Path

import pytest
import requests

from plone.app.asyncjobs import deployment as deploy


pytestmark = pytest.mark.deployment

E2E_ZCML = '<include package="plone.app.asyncjobs.tests" file="deployment.zcml" />'
OTHER = "Other"
OTHER_ADMIN = ("otheradmin", "otheradmin-secret-1")
ADD_OTHER_SITE = Path(__file__).with_name("deployment_other_site.py")
JSON = {"Accept": "application/json", "Content-Type": "application/json"}


@pytest.fixture(scope="module")
def sites(tmp_path_factory):
    """The running deployment with ``/Plone`` and ``/Other``."""
    names = ["http-instance", "monitor-instance", "http-worker", "monitor-worker", "zeo-port"]
    ports = dict(zip(names, deploy.free_ports(len(names))))
    dep = deploy.Deployment(tmp_path_factory.mktemp("buildout"), ports=ports,
                            instance_zcml=E2E_ZCML, worker_zcml=E2E_ZCML)
    try:
        dep.buildout()
        dep.start()
        env = dict(os.environ, ASYNCJOBS_OTHER_SITE=OTHER, ASYNCJOBS_OTHER_ADMIN=OTHER_ADMIN[0],
                   ASYNCJOBS_OTHER_PASSWORD=OTHER_ADMIN[1])
        env.pop("ZC_ASYNC_UUID", None)
        made = subprocess.run([str(dep.bin("instance")), "run", str(ADD_OTHER_SITE)],
                              cwd=dep.directory, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, timeout=600)
        assert "ASYNCJOBS-OTHER-SITE-READY" in made.stdout, made.stdout[-5000:]
        yield dep
    finally:
        dep.stop()
        leftovers = [pid for pid in dep._own_processes() if deploy._alive(pid)]
        assert leftovers == [], f"processes still running: {leftovers}"


def queue_and_wait(dep, site_id, doc_id):
    """Queue, as the root's Manager, the job that creates a document and
    reports its user and roles; wait until it completed; return its oid."""
    site_url = dep.url("instance", site_id)
    queued = requests.get(f"{site_url}/@@asyncjobs-e2e-queue?id={doc_id}", auth=deploy.ADMIN,
                          timeout=60)
    assert queued.status_code == 200, queued.text
    oid = queued.json()["oid"]
    deadline = time.monotonic() + 120
    while True:
        state = requests.get(f"{site_url}/@@asyncjobs-e2e-job?oid={oid}", auth=deploy.ADMIN,
                             timeout=60).json()
        if state["status"] == "completed" or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert state["status"] == "completed" and not state["failed"], (state, dep.log_tail("worker"))
    assert "Manager" in state["result"]["roles"]
    return str(oid)


def csrf_token(session, site_url):
    """The CSRF token Plone's forms give the session's user."""
    page = session.get(f"{site_url}/@@personal-information", timeout=60).text
    found = re.search(r'name="_authenticator"\s+value="([0-9a-f]+)"', page)
    assert found, page[:2000]
    return found.group(1)


def all_jobs(dep):
    """Every completed job of the database, as the root's Manager sees them."""
    url = dep.url("instance", f"{deploy.SITE_ID}/@asyncjobs/jobs")
    found, params = [], {"state": "completed", "scope": "database", "size": 100}
    while url:
        page = requests.get(url, params=params, auth=deploy.ADMIN, headers=JSON, timeout=60)
        assert page.status_code == 200, page.text
        found += page.json()["items"]
        url, params = page.json()["batching"].get("next"), None
    return found


def test_other_sites_administrator_gets_nothing_of_plone_and_no_manager_rights(sites):
    dep = sites
    plone_job = queue_and_wait(dep, deploy.SITE_ID, "plone-doc")
    other_job = queue_and_wait(dep, OTHER, "other-doc")
    worker_uuid = (dep.directory / "var" / "worker-uuid.txt").read_text().split()[0]
    other_url = dep.url("instance", OTHER)
    rest = f"{other_url}/@asyncjobs"
    admin = requests.Session()
    admin.auth = OTHER_ADMIN
    admin.headers.update(JSON)

    # /Plone's job is not there for /Other, like a job that never was.
    missing = admin.get(f"{rest}/jobs/{plone_job}", timeout=60)
    never = admin.get(f"{rest}/jobs/99999999", timeout=60)
    assert missing.status_code == never.status_code == 404
    assert missing.json()["error"]["message"] == f"there is no job {plone_job}"
    listed = admin.get(f"{rest}/jobs", params={"state": "completed"}, timeout=60).json()
    assert [item["id"] for item in listed["items"]] == [other_job]
    assert admin.post(f"{rest}/jobs/{plone_job}/retry", timeout=60).status_code == 404
    assert admin.post(f"{rest}/jobs/{plone_job}/cancel", timeout=60).status_code == 404

    # The shared worker is not theirs to stop.
    paused = admin.post(f"{rest}/dispatchers/{worker_uuid}/pause", timeout=60)
    assert paused.status_code == 403, paused.text
    resized = admin.patch(f"{rest}/dispatchers/{worker_uuid}/queues/_default_/agents/main",
                          json={"size": 0}, timeout=60)
    assert resized.status_code == 403
    assert admin.get(f"{rest}/dispatchers/{worker_uuid}", timeout=60).json()["paused"] is False

    # Retrying the Manager's job of their own site would lend them the Manager role.
    refused = admin.post(f"{rest}/jobs/{other_job}/retry", timeout=60)
    assert refused.status_code == 403 and "Manager" in refused.json()["error"]["message"]
    browser = requests.Session()
    browser.auth = OTHER_ADMIN
    token = csrf_token(browser, other_url)
    answer = browser.post(f"{other_url}/@@asyncjobs-action",
                          data={"id": other_job, "form.buttons.retry": "1",
                                "_authenticator": token},
                          allow_redirects=False, timeout=60)
    assert answer.status_code == 302 and answer.headers["Location"].endswith(f"id={other_job}")
    answer = browser.post(f"{other_url}/@@asyncjobs-action",
                          data={"dispatcher": worker_uuid, "form.buttons.pause": "1",
                                "_authenticator": token},
                          allow_redirects=False, timeout=60)
    assert answer.status_code == 403

    # Nothing else ran, or waits to run, as the Manager.
    jobs = all_jobs(dep)
    assert sorted(job["id"] for job in jobs if job["callable"].endswith("create_document")) \
        == sorted([plone_job, other_job])
    assert all(job["state"] == "completed" for job in jobs)
    pending = requests.get(dep.url("instance", f"{deploy.SITE_ID}/@asyncjobs/jobs"),
                           params={"state": "pending", "scope": "database"},
                           auth=deploy.ADMIN, headers=JSON, timeout=60).json()
    assert pending["items"] == []
