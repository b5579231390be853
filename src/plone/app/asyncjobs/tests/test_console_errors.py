"""An unexpected error of a control panel page: logged, never shown."""
import requests
import transaction
from plone import api
from plone.app.testing import SITE_OWNER_NAME
from plone.app.testing import SITE_OWNER_PASSWORD
from plone.app.testing import TEST_USER_ID
from plone.app.testing import setRoles

from plone.app.asyncjobs.browser import overview


def test_a_failing_page_shows_no_traceback_and_logs_one(functional, functional_portal,
                                                         monkeypatch, caplog):
    setRoles(functional_portal, TEST_USER_ID, ["Manager"])
    api.user.create(email="siteadmin@example.org", username="siteadmin",
                    password="secret-siteadmin-1", roles=("Site Administrator",))
    transaction.commit()

    def broken(queues, scope, now=None):
        raise RuntimeError("a bug that knows /srv/secret/path.py")

    monkeypatch.setattr(overview.inspection, "overview", broken)
    url = (f"http://{functional['host']}:{functional['port']}/plone"
           "/@@asyncjobs-controlpanel")
    for user in (("siteadmin", "secret-siteadmin-1"), (SITE_OWNER_NAME, SITE_OWNER_PASSWORD)):
        answer = requests.get(url, auth=user, timeout=60)
        assert answer.status_code == 500
        assert "secret" not in answer.text and "RuntimeError" not in answer.text
    logged = [record for record in caplog.records if record.name == "plone.app.asyncjobs.admin"]
    assert logged and "/srv/secret/path.py" in logged[0].exc_text
