"""``@@asyncjobs-demo`` over real HTTP (the functional layer's WSGI server),
with the layer's dispatcher running the jobs it queues."""
import base64
import html
import re
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime
from datetime import timezone
from http.cookiejar import CookieJar

import pytest
import transaction
from plone.app.testing import SITE_OWNER_NAME
from plone.app.testing import SITE_OWNER_PASSWORD
from plone.app.testing import TEST_USER_NAME
from plone.app.testing import TEST_USER_PASSWORD
from plone.testing.zope import login
from plone.testing.zope import logout
from zope.component.hooks import setSite

from plone.app.asyncjobs import api as jobs_api
from plone.app.asyncjobs.browser import demo
from plone.app.asyncjobs.engine.failure import is_failure
from plone.app.asyncjobs.engine.failure import traceback_text
from plone.app.asyncjobs.engine.ids import object_id
from plone.app.asyncjobs.engine.progress import progress_of
from plone.app.asyncjobs.engine.status import COMPLETED
from plone.app.asyncjobs.engine.status import PENDING
from plone.app.asyncjobs.engine.testing.waiting import wait_until
from plone.app.asyncjobs.testing import OTHER_SITE_ID
from plone.app.asyncjobs.testing import password
from plone.app.asyncjobs.testing import wait_for_result


STEPS = 3


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


class Client:
    """A little browser: cookies, basic auth, and the last response."""

    def __init__(self, functional, credentials=None, follow_redirects=True):
        self.base = f"http://{functional['host']}:{functional['port']}/plone"
        handlers = [urllib.request.HTTPCookieProcessor(CookieJar())]
        if not follow_redirects:
            handlers.append(NoRedirect())
        self.opener = urllib.request.build_opener(*handlers)
        self.credentials = credentials

    def open(self, path, data=None):
        url = path if path.startswith("http") else f"{self.base}/{path}"
        body = None if data is None else urllib.parse.urlencode(data).encode()
        request = urllib.request.Request(url, data=body)
        if self.credentials:
            token = base64.b64encode(":".join(self.credentials).encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        try:
            with self.opener.open(request, timeout=30) as response:
                return response.status, response.geturl(), response.headers, \
                    response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.geturl(), error.headers, error.read().decode()


def manager(functional, **options):
    return Client(functional, (SITE_OWNER_NAME, SITE_OWNER_PASSWORD), **options)


def authenticator(page):
    match = re.search(r'name="_authenticator"\s+value="([^"]+)"', page)
    assert match, "the form has no CSRF token"
    return match.group(1)


def demo_jobs_in_queue(portal):
    transaction.begin()
    return [job for job in jobs_api.get_queue(context=portal)
            if getattr(job, "func", None) in demo.DEMO_FUNCTIONS]


@pytest.fixture
def quick_demo(monkeypatch):
    """Make the slow demo job quick."""
    monkeypatch.setattr(demo, "COUNT_STEPS", STEPS)
    monkeypatch.setattr(demo, "SECONDS_PER_STEP", 0.01)


def test_a_manager_sees_the_demo_page(functional):
    status, url, headers, page = manager(functional).open("@@asyncjobs-demo")
    assert status == 200
    assert "Queue the demo jobs" in page
    assert 'name="_authenticator"' in page
    for name in ("count_slowly", "fail_on_purpose", "say_when"):
        assert name in page
    assert "Open the job control panel" in page
    assert re.search(r'href="[^"]+/plone/@@asyncjobs-controlpanel"', page)
    assert 'id="asyncjobs-demo-jobs"' not in page, "no table before jobs are queued"
    assert "Refresh" not in headers


def test_anonymous_is_sent_to_the_login_form(functional):
    status, url, headers, page = Client(functional, follow_redirects=False).open(
        "@@asyncjobs-demo")
    assert status == 302
    assert "require_login" in headers["Location"] or "login" in headers["Location"]
    status, url, headers, page = Client(functional).open("@@asyncjobs-demo")
    assert "Queue the demo jobs" not in page
    assert 'name="__ac_password"' in page, "the login form"


def test_a_member_is_not_allowed(functional):
    client = Client(functional, (TEST_USER_NAME, TEST_USER_PASSWORD))
    status, url, headers, page = client.open("@@asyncjobs-demo")
    assert "Queue the demo jobs" not in page
    assert status in (401, 403) or url.endswith("/insufficient-privileges"), (status, url)


def test_a_member_cannot_queue_the_jobs(functional):
    client = Client(functional, (TEST_USER_NAME, TEST_USER_PASSWORD))
    page = manager(functional).open("@@asyncjobs-demo")[3]
    client.open("@@asyncjobs-demo", {"_authenticator": authenticator(page),
                                     "form.buttons.queue": "queue"})
    assert demo_jobs_in_queue(functional["portal"]) == []


def test_a_post_without_the_csrf_token_is_refused(functional):
    status, url, headers, page = manager(functional).open(
        "@@asyncjobs-demo", {"form.buttons.queue": "queue"})
    assert status == 403
    assert demo_jobs_in_queue(functional["portal"]) == []
    status = manager(functional).open(
        "@@asyncjobs-demo", {"form.buttons.queue": "queue", "_authenticator": "forged"})[0]
    assert status == 403
    assert demo_jobs_in_queue(functional["portal"]) == []


def test_the_button_queues_three_jobs_that_run(functional, quick_demo):
    client = manager(functional)
    page = client.open("@@asyncjobs-demo")[3]
    before = datetime.now(timezone.utc)
    status, url, headers, page = client.open(
        "@@asyncjobs-demo", {"_authenticator": authenticator(page),
                             "form.buttons.queue": "queue"})
    # Redirected to the page naming the new jobs; the status message shows.
    assert status == 200
    assert "/@@asyncjobs-demo?jobs=" in url
    assert "Queued 3 demo jobs" in page
    assert 'id="asyncjobs-demo-jobs"' in page
    assert headers["Refresh"] == str(demo.RELOAD_SECONDS)

    transaction.begin()
    portal = functional["portal"]
    ids = urllib.parse.parse_qs(urllib.parse.urlparse(url).query)["jobs"][0]
    jobs = demo.load_demo_jobs(portal, ids)
    assert [job.func for job in jobs] == [
        demo.count_slowly, demo.fail_on_purpose, demo.say_when]
    slow, failing, scheduled = jobs

    # The slow job ran, reporting its progress at each step.
    assert re.fullmatch(rf"counted to {STEPS} in \d+\.\d s", wait_for_result(slow))
    progress = progress_of(slow)
    assert (progress.done, progress.total) == (STEPS, STEPS)
    assert progress.message == f"counted {STEPS} of {STEPS}"

    # The failing job's failure names its exception.
    failure = wait_for_result(failing)
    assert is_failure(failure)
    assert "RuntimeError: this demo job fails on purpose" in traceback_text(failure)

    # The scheduled job waits for its time.
    transaction.begin()
    assert scheduled.status == PENDING
    assert scheduled.begin_after > datetime.now(timezone.utc)
    assert scheduled.begin_after >= before + demo.SCHEDULE_DELAY

    # The page shows all that.
    def shows_outcomes():
        page = client.open(url)[3]
        return "this demo job fails on purpose" in page and \
            f"counted to {STEPS} in" in page and page
    page = wait_until(shows_outcomes, seconds=10)
    rows = re.findall(r'<tr data-job="(\w+)"\s+data-status="(\w+)"', page)
    assert rows == [("count_slowly", COMPLETED), ("fail_on_purpose", COMPLETED),
                    ("say_when", PENDING)]
    assert "100%" in page
    # Badges as the control panel shows them.
    badges = re.findall(r'<span class="(badge [\w-]+)">(\w+)</span>', page)
    assert badges == [("badge text-bg-success", "succeeded"), ("badge text-bg-danger", "failed"),
                      ("badge text-bg-secondary", "pending")]
    assert "RuntimeError: this demo job fails on purpose" in html.unescape(page)
    assert "or later" in page
    # Each row links to its job's page in the control panel.
    links = [re.search(r'href="([^"]+)"', tag)[1]
             for tag in re.findall(r"<a [^>]*data-job-link[^>]*>", page)]
    assert links == [f"{functional['portal'].absolute_url()}/@@asyncjobs-job?id="
                     f"{object_id(job)[0]}" for job in jobs]


def test_say_when_runs_with_the_sites_url(functional):
    portal = functional["portal"]
    job = jobs_api.queue_job(demo.say_when, portal)
    result = wait_for_result(job)
    assert result.startswith("ran at ")
    assert result.endswith(f" in {portal.absolute_url()}")


def test_ids_that_are_not_demo_jobs_are_ignored(functional):
    portal = functional["portal"]
    job = jobs_api.queue_job(demo.say_when, portal)
    transaction.commit()
    ids = f"{demo.job_ids([job])},{demo.job_ids([portal])},nonsense,99999999,-1"
    assert demo.load_demo_jobs(portal, ids) == [job]
    status, url, headers, page = manager(functional).open(f"@@asyncjobs-demo?jobs={ids}")
    assert status == 200
    assert page.count('<tr data-job="') == 1


def test_another_sites_demo_jobs_are_left_out(two_sites):
    """Jobs belong to their site: ``/plone``'s demo page does not show
    ``/other``'s demo jobs (their status, result and URL), whatever ids its
    query names, as ``/plone``'s console would not."""
    app = two_sites["app"]
    plone, other = app["plone"], app[OTHER_SITE_ID]
    made = {}
    for site in (plone, other):
        setSite(site)
        login(app.acl_users, SITE_OWNER_NAME)
        try:
            made[site.getId()] = jobs_api.queue_job(demo.fail_on_purpose, site)
        finally:
            logout()
    transaction.commit()
    for job in made.values():
        wait_for_result(job)
    setSite(plone)
    ids = demo.job_ids([made[OTHER_SITE_ID], made["plone"]])
    assert demo.load_demo_jobs(plone, ids) == [made["plone"]]
    assert demo.load_demo_jobs(other, ids) == [made[OTHER_SITE_ID]]
    client = Client(two_sites, ("sitemanager", password("sitemanager")))  # a Manager of /plone
    status, url, headers, page = client.open(f"@@asyncjobs-demo?jobs={ids}")
    assert status == 200
    assert page.count('<tr data-job="') == 1
    assert f'data-job-id="{demo.job_ids([made["plone"]])}"' in page
    assert f'data-job-id="{demo.job_ids([made[OTHER_SITE_ID]])}"' not in page
