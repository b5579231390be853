"""ASYNCJOBS_FUNCTIONAL_TESTING: the WSGI server and the dispatcher share the
test's database."""
import base64
import urllib.request

from plone import api
from plone.app.testing import SITE_OWNER_NAME
from plone.app.testing import SITE_OWNER_PASSWORD
from plone.app.testing import TEST_USER_ID
from plone.app.testing import setRoles

from plone.app.asyncjobs import api as jobs_api
from plone.app.asyncjobs.testing import wait_for_result
from plone.app.asyncjobs.tests import jobs


def test_the_server_shows_what_a_job_committed(functional, functional_portal):
    portal = functional_portal
    setRoles(portal, TEST_USER_ID, ["Manager"])
    doc = api.content.create(container=portal, type="Document", id="doc", title="Before")
    job = jobs_api.queue_job(jobs.set_title, doc, "Set by a job")
    assert wait_for_result(job) == "Set by a job"
    request = urllib.request.Request(f"http://{functional['host']}:{functional['port']}/plone/doc")
    credentials = base64.b64encode(f"{SITE_OWNER_NAME}:{SITE_OWNER_PASSWORD}".encode())
    request.add_header("Authorization", "Basic " + credentials.decode())
    with urllib.request.urlopen(request, timeout=30) as response:
        assert "Set by a job" in response.read().decode()
