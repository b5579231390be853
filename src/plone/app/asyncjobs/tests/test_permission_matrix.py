"""Who may see and do what in the job console and the REST API: the matrix.

Two Plone sites share one database (``ASYNCJOBS_TWO_SITES_TESTING``):
``/plone`` and ``/other``.  Each row of :data:`MATRIX` is one request (a
console page, an action's confirmation, its POST without and with the CSRF
token, a REST endpoint with its method), and states what each user gets,
in the order of :data:`USERS`:

anonymous, member, editor, reviewer
    users of ``/plone`` without ``Manage jobs`` (and Anonymous);
siteadmin, otheradmin
    the Site Administrators of ``/plone`` and of ``/other`` (whose
    credentials mean nothing to ``/plone``: they are anonymous there);
sitemanager, rootmanager
    a Manager of ``/plone``, and Zope's ``admin``, a Manager of the root.

An outcome is the HTTP status (302 for a console page that Plone's login
form answers instead, as it does for anyone without the permission); a
POST of the console that redirects adds
``ok`` or ``error`` (the status message it left); the live view adds
``found`` or ``missing``; a listing adds ``+plone`` when it shows a job
of ``/plone``.  The jobs the requests name (``{name}`` in a path) are made
by :func:`world`: ``root_done`` and ``editor_done`` are finished jobs of
``/plone`` queued by the root's Manager and by the editor, ``other_done``
one of ``/other``, ``engine_done`` one queued through the engine (no
site), ``not_a_job`` the oid of the site itself; each action that can be
done once has its own job per row.  The test is parametrised by user; it
fails with every cell that differs.
"""
from datetime import timedelta
from urllib.parse import unquote

import pytest
import requests
import transaction
from plone.app.testing import SITE_OWNER_NAME
from plone.app.testing import SITE_OWNER_PASSWORD
from plone.testing.zope import login
from plone.testing.zope import logout
from plone.protect.authenticator import createToken
from Products.statusmessages.adapter import _decodeCookieValue
from ZODB.utils import u64
from zope.component.hooks import setSite

from plone.app.asyncjobs import api as jobs_api
from plone.app.asyncjobs.engine import schedules as engine_schedules
from plone.app.asyncjobs.engine.job import Job
from plone.app.asyncjobs.engine.schedules import Schedule
from plone.app.asyncjobs.engine.triggers import Interval
from plone.app.asyncjobs.engine.testing.waiting import wait_for_poll
from plone.app.asyncjobs.inspection import job_id
from plone.app.asyncjobs.schedules import saved
from plone.app.asyncjobs.schedules import schedulables
from plone.app.asyncjobs.schedules.jobs import SiteJobFactory
from plone.app.asyncjobs.schedules.schedulables import Schedulable
from plone.app.asyncjobs.testing import OTHER_SITE_ID
from plone.app.asyncjobs.testing import SITE_USERS
from plone.app.asyncjobs.testing import password
from plone.app.asyncjobs.testing import wait_for_all_jobs
from plone.app.asyncjobs.tests import jobs


USERS = ("anonymous", "member", "editor", "reviewer", "siteadmin", "otheradmin",
         "sitemanager", "rootmanager")

DATABASE = "scope=database"
RESIZE = "dispatcher={dispatcher}&queue=&agent=main&size=3"
SAVE_FORM = ("form.buttons.save=1&saved.name=new-tick&saved.schedulable=mark"
             "&saved.interval=86400&saved.enabled=on")

#: (row, site, kind, method, path, body), then one outcome per user.
#: kind: "page" (a console page), "live", "post" (a console POST without
#: the token), "token" (with it), "rest", "listing" (REST or console list).
MATRIX = [
    # -- console pages ----------------------------------------------------------
    (("overview", "plone", "page", "GET", "@@asyncjobs-controlpanel", None),
     "302 302 302 302 200 302 200 200"),
    (("overview, every site", "plone", "page", "GET", f"@@asyncjobs-controlpanel?{DATABASE}", None),
     "302 302 302 302 403 302 403 200"),
    (("completed list", "plone", "listing", "GET", "@@asyncjobs-jobs?state=completed", None),
     "302 302 302 302 200+plone 302 200+plone 200+plone"),
    (("/other's completed list", "other", "listing", "GET", "@@asyncjobs-jobs?state=completed",
      None),
     "302 302 302 302 302 200 302 200"),
    (("job page", "plone", "page", "GET", "@@asyncjobs-job?id={root_done}", None),
     "302 302 302 302 200 302 200 200"),
    (("/plone's job from /other", "other", "page", "GET", "@@asyncjobs-job?id={root_done}", None),
     "302 302 302 302 302 404 302 404"),
    (("/other's job from /plone", "plone", "page", "GET", "@@asyncjobs-job?id={other_done}", None),
     "302 302 302 302 404 302 404 404"),
    (("engine job", "plone", "page", "GET", "@@asyncjobs-job?id={engine_done}", None),
     "302 302 302 302 404 302 404 404"),
    (("engine job, every site", "plone", "page", "GET",
      f"@@asyncjobs-job?id={{engine_done}}&{DATABASE}", None),
     "302 302 302 302 403 302 403 200"),
    (("not a job", "plone", "page", "GET", "@@asyncjobs-job?id={not_a_job}", None),
     "302 302 302 302 404 302 404 404"),
    (("live", "plone", "live", "GET", "@@asyncjobs-live?ids={root_done}", None),
     "302 302 302 302 200found 302 200found 200found"),
    (("live, /plone's job from /other", "other", "live", "GET", "@@asyncjobs-live?ids={root_done}",
      None),
     "302 302 302 302 302 200missing 302 200missing"),
    # -- console actions: confirmation, POST without and with the token ----------------
    (("cancel?", "plone", "page", "GET", "@@asyncjobs-action?action=cancel&id={pending_1}", None),
     "302 302 302 302 200 302 200 200"),
    (("cancel, no token", "plone", "post", "POST",
      "@@asyncjobs-action?id={pending_1}&form.buttons.cancel=1", None),
     "302 302 302 302 403 302 403 403"),
    (("cancel", "plone", "token", "POST", "@@asyncjobs-action?id={pending_1}&form.buttons.cancel=1",
      None),
     "302 302 302 302 302ok 302 302ok 302ok"),
    (("cancel /plone's job from /other", "other", "token", "POST",
      "@@asyncjobs-action?id={pending_2}&form.buttons.cancel=1", None),
     "302 302 302 302 302 302error 302 302error"),
    (("retry root's job?", "plone", "page", "GET", "@@asyncjobs-action?action=retry&id={root_done}",
      None),
     "302 302 302 302 302 302 302 200"),
    (("retry root's job, no token", "plone", "post", "POST",
      "@@asyncjobs-action?id={root_done}&form.buttons.retry=1", None),
     "302 302 302 302 403 302 403 403"),
    (("retry root's job", "plone", "token", "POST",
      "@@asyncjobs-action?id={root_done}&form.buttons.retry=1", None),
     "302 302 302 302 302error 302 302error 302ok"),
    (("retry editor's job", "plone", "token", "POST",
      "@@asyncjobs-action?id={editor_done}&form.buttons.retry=1", None),
     "302 302 302 302 302ok 302 302ok 302ok"),
    (("retry /plone's job from /other", "other", "token", "POST",
      "@@asyncjobs-action?id={root_done}&form.buttons.retry=1", None),
     "302 302 302 302 302 302error 302 302error"),
    # A callback's copy ran alone, as the clicking user (not the job's).
    (("retry a callback of root's job", "plone", "token", "POST",
      "@@asyncjobs-action?id={root_callback}&form.buttons.retry=1", None),
     "302 302 302 302 302error 302 302error 302error"),
    (("remove?", "plone", "page", "GET", "@@asyncjobs-action?action=remove&id={removable_1}", None),
     "302 302 302 302 200 302 200 200"),
    (("remove, no token", "plone", "post", "POST",
      "@@asyncjobs-action?id={removable_1}&form.buttons.remove=1", None),
     "302 302 302 302 403 302 403 403"),
    (("remove", "plone", "token", "POST", "@@asyncjobs-action?id={removable_1}&form.buttons.remove=1",
      None),
     "302 302 302 302 302ok 302 302ok 302ok"),
    (("purge?", "plone", "page", "GET", "@@asyncjobs-action?action=purge&days=36500", None),
     "302 302 302 302 403 302 403 200"),
    (("purge, no token", "plone", "post", "POST",
      "@@asyncjobs-action?days=36500&form.buttons.purge=1", None),
     "302 302 302 302 403 302 403 403"),
    (("purge", "plone", "token", "POST", "@@asyncjobs-action?days=36500&form.buttons.purge=1", None),
     "302 302 302 302 403 302 403 302ok"),
    (("resize?", "plone", "page", "GET", f"@@asyncjobs-action?action=resize&{RESIZE}", None),
     "302 302 302 302 403 302 403 200"),
    (("resize, no token", "plone", "post", "POST",
      f"@@asyncjobs-action?{RESIZE}&form.buttons.resize=1", None),
     "302 302 302 302 403 302 403 403"),
    (("resize", "plone", "token", "POST", f"@@asyncjobs-action?{RESIZE}&form.buttons.resize=1",
      None),
     "302 302 302 302 403 302 403 302ok"),
    (("pause?", "plone", "page", "GET", "@@asyncjobs-action?action=pause&dispatcher={dispatcher}",
      None),
     "302 302 302 302 403 302 403 200"),
    (("pause, no token", "plone", "post", "POST",
      "@@asyncjobs-action?dispatcher={dispatcher}&form.buttons.pause=1", None),
     "302 302 302 302 403 302 403 403"),
    (("pause", "plone", "token", "POST",
      "@@asyncjobs-action?dispatcher={dispatcher}&form.buttons.pause=1", None),
     "302 302 302 302 403 302 403 302ok"),
    (("pause from /other", "other", "token", "POST",
      "@@asyncjobs-action?dispatcher={dispatcher}&form.buttons.pause=1", None),
     "302 302 302 302 302 403 302 302ok"),
    (("resume?", "plone", "page", "GET", "@@asyncjobs-action?action=resume&dispatcher={dispatcher}",
      None),
     "302 302 302 302 403 302 403 200"),
    (("resume, no token", "plone", "post", "POST",
      "@@asyncjobs-action?dispatcher={dispatcher}&form.buttons.resume=1", None),
     "302 302 302 302 403 302 403 403"),
    (("resume", "plone", "token", "POST",
      "@@asyncjobs-action?dispatcher={dispatcher}&form.buttons.resume=1", None),
     "302 302 302 302 403 302 403 302ok"),
    (("schedules", "plone", "page", "GET", "@@asyncjobs-schedules", None),
     "302 302 302 302 200 302 200 200"),
    (("pause schedule, no token", "plone", "post", "POST",
      "@@asyncjobs-schedules?name=editor-tick&form.buttons.pause=1", None),
     "302 302 302 302 403 302 403 403"),
    (("pause schedule", "plone", "token", "POST",
      "@@asyncjobs-schedules?name=editor-tick&form.buttons.pause=1", None),
     "302 302 302 302 403 302 403 302ok"),
    (("resume schedule", "plone", "token", "POST",
      "@@asyncjobs-schedules?name=editor-tick&form.buttons.resume=1", None),
     "302 302 302 302 403 302 403 302ok"),
    (("run root's schedule", "plone", "token", "POST",
      "@@asyncjobs-schedules?name=root-tick&form.buttons.run=1", None),
     "302 302 302 302 403 302 403 302ok"),
    (("run /plone's schedule from /other", "other", "token", "POST",
      "@@asyncjobs-schedules?name=root-tick&form.buttons.run=1", None),
     "302 302 302 302 302 302error 302 302error"),
    # Saved schedules (see SAVED): their site's Site Administrators and
    # Managers act on them; code schedules stay database-wide.
    (("pause saved schedule", "plone", "token", "POST",
      "@@asyncjobs-schedules?name=saved-tick@plone&form.buttons.pause=1", None),
     "302 302 302 302 302ok 302 302ok 302ok"),
    (("run saved schedule", "plone", "token", "POST",
      "@@asyncjobs-schedules?name=saved-tick@plone&form.buttons.run=1", None),
     "302 302 302 302 302ok 302 302ok 302ok"),
    (("run /plone's saved schedule from /other", "other", "token", "POST",
      "@@asyncjobs-schedules?name=saved-tick@plone&form.buttons.run=1", None),
     "302 302 302 302 302 302error 302 302error"),
    # The root's Manager saved and paused root-saved: resuming it makes its
    # jobs run as that Manager, refused (as "run now") to those who lack
    # the Manager's roles; pausing lends no rights.
    (("resume root's saved schedule", "plone", "token", "POST",
      "@@asyncjobs-schedules?name=root-saved@plone&form.buttons.resume=1", None),
     "302 302 302 302 302error 302 302error 302ok"),
    (("run root's saved schedule", "plone", "token", "POST",
      "@@asyncjobs-schedules?name=root-saved@plone&form.buttons.run=1", None),
     "302 302 302 302 302error 302 302error 302ok"),
    (("save a schedule, no token", "plone", "post", "POST",
      f"@@asyncjobs-schedules?{SAVE_FORM}", None),
     "302 302 302 302 403 302 403 403"),
    (("save a schedule", "plone", "token", "POST", f"@@asyncjobs-schedules?{SAVE_FORM}", None),
     "302 302 302 302 302ok 302 302ok 302ok"),
    (("delete a code schedule", "plone", "token", "POST",
      "@@asyncjobs-schedules?name=editor-tick&form.buttons.delete=1", None),
     "302 302 302 302 403 302 403 302error"),
    (("delete /plone's saved schedule from /other", "other", "token", "POST",
      "@@asyncjobs-schedules?name=new-tick@plone&form.buttons.delete=1", None),
     "302 302 302 302 302 302error 302 302error"),
    (("delete the saved schedule", "plone", "token", "POST",
      "@@asyncjobs-schedules?name=new-tick@plone&form.buttons.delete=1", None),
     "302 302 302 302 302ok 302 302ok 302ok"),
    # -- REST API ---------------------------------------------------------------------
    (("GET overview", "plone", "rest", "GET", "@asyncjobs", None),
     "401 403 403 403 200 401 200 200"),
    (("GET overview, every site", "plone", "rest", "GET", f"@asyncjobs?{DATABASE}", None),
     "401 403 403 403 403 401 403 200"),
    (("GET jobs", "plone", "listing", "GET", "@asyncjobs/jobs?state=completed", None),
     "401 403 403 403 200+plone 401 200+plone 200+plone"),
    (("GET /other's jobs", "other", "listing", "GET", "@asyncjobs/jobs?state=completed", None),
     "401 401 401 401 401 200 401 200"),
    (("GET job", "plone", "rest", "GET", "@asyncjobs/jobs/{root_done}", None),
     "401 403 403 403 200 401 200 200"),
    (("GET /plone's job from /other", "other", "rest", "GET", "@asyncjobs/jobs/{root_done}", None),
     "401 401 401 401 401 404 401 404"),
    (("GET /other's job from /plone", "plone", "rest", "GET", "@asyncjobs/jobs/{other_done}", None),
     "401 403 403 403 404 401 404 404"),
    (("GET engine job", "plone", "rest", "GET", "@asyncjobs/jobs/{engine_done}", None),
     "401 403 403 403 404 401 404 404"),
    (("GET engine job, every site", "plone", "rest", "GET",
      f"@asyncjobs/jobs/{{engine_done}}?{DATABASE}", None),
     "401 403 403 403 403 401 403 200"),
    (("GET not a job", "plone", "rest", "GET", "@asyncjobs/jobs/{not_a_job}", None),
     "401 403 403 403 404 401 404 404"),
    (("DELETE job", "plone", "rest", "DELETE", "@asyncjobs/jobs/{removable_2}", None),
     "401 403 403 403 204 401 204 204"),
    (("DELETE /plone's job from /other", "other", "rest", "DELETE",
      "@asyncjobs/jobs/{removable_3}", None),
     "401 401 401 401 401 404 401 404"),
    (("POST retry root's job", "plone", "rest", "POST", "@asyncjobs/jobs/{root_done}/retry", {}),
     "401 403 403 403 403 401 403 201"),
    (("POST retry editor's job", "plone", "rest", "POST", "@asyncjobs/jobs/{editor_done}/retry",
      {}),
     "401 403 403 403 201 401 201 201"),
    (("POST retry /plone's job from /other", "other", "rest", "POST",
      "@asyncjobs/jobs/{root_done}/retry", {}),
     "401 401 401 401 401 404 401 404"),
    (("POST retry a callback of root's job", "plone", "rest", "POST",
      "@asyncjobs/jobs/{root_callback}/retry", {}),
     "401 403 403 403 409 401 409 409"),
    (("POST retry the event callback of root's job", "plone", "rest", "POST",
      "@asyncjobs/jobs/{root_event_callback}/retry", {}),
     "401 403 403 403 409 401 409 409"),
    (("POST cancel", "plone", "rest", "POST", "@asyncjobs/jobs/{pending_3}/cancel", {}),
     "401 403 403 403 200 401 200 200"),
    (("POST cancel /plone's job from /other", "other", "rest", "POST",
      "@asyncjobs/jobs/{pending_4}/cancel", {}),
     "401 401 401 401 401 404 401 404"),
    (("POST purge", "plone", "rest", "POST", "@asyncjobs/purge", {"days": 36500}),
     "401 403 403 403 403 401 403 200"),
    (("GET dispatchers", "plone", "rest", "GET", "@asyncjobs/dispatchers", None),
     "401 403 403 403 200 401 200 200"),
    (("GET dispatcher", "plone", "rest", "GET", "@asyncjobs/dispatchers/{dispatcher}", None),
     "401 403 403 403 200 401 200 200"),
    (("PATCH agent", "plone", "rest", "PATCH",
      "@asyncjobs/dispatchers/{dispatcher}/queues/_default_/agents/main", {"size": 3}),
     "401 403 403 403 403 401 403 200"),
    (("POST pause", "plone", "rest", "POST", "@asyncjobs/dispatchers/{dispatcher}/pause", {}),
     "401 403 403 403 403 401 403 200"),
    (("POST pause from /other", "other", "rest", "POST",
      "@asyncjobs/dispatchers/{dispatcher}/pause", {}),
     "401 401 401 401 401 403 401 200"),
    (("POST resume", "plone", "rest", "POST", "@asyncjobs/dispatchers/{dispatcher}/resume", {}),
     "401 403 403 403 403 401 403 200"),
    # Schedules (see SCHEDULES): in a database of two sites only the root's
    # Manager may pause, resume and run them (Manage workers on the root).
    (("GET schedules", "plone", "rest", "GET", "@asyncjobs/schedules", None),
     "401 403 403 403 200 401 200 200"),
    (("GET schedule", "plone", "rest", "GET", "@asyncjobs/schedules/editor-tick", None),
     "401 403 403 403 200 401 200 200"),
    (("GET /other's schedule from /plone", "plone", "rest", "GET",
      "@asyncjobs/schedules/other-tick", None),
     "401 403 403 403 404 401 404 404"),
    (("GET /plone's schedule from /other", "other", "rest", "GET",
      "@asyncjobs/schedules/editor-tick", None),
     "401 401 401 401 401 404 401 404"),
    (("GET engine schedule", "plone", "rest", "GET", "@asyncjobs/schedules/engine-tick", None),
     "401 403 403 403 404 401 404 404"),
    (("GET engine schedule, every site", "plone", "rest", "GET",
      f"@asyncjobs/schedules/engine-tick?{DATABASE}", None),
     "401 403 403 403 403 401 403 200"),
    (("POST pause schedule", "plone", "rest", "POST", "@asyncjobs/schedules/editor-tick/pause",
      {}),
     "401 403 403 403 403 401 403 200"),
    (("POST resume schedule", "plone", "rest", "POST", "@asyncjobs/schedules/editor-tick/resume",
      {}),
     "401 403 403 403 403 401 403 200"),
    (("POST run editor's schedule", "plone", "rest", "POST",
      "@asyncjobs/schedules/editor-tick/run", {}),
     "401 403 403 403 403 401 403 201"),
    (("POST run root's schedule", "plone", "rest", "POST", "@asyncjobs/schedules/root-tick/run",
      {}),
     "401 403 403 403 403 401 403 201"),
    (("POST run /plone's schedule from /other", "other", "rest", "POST",
      "@asyncjobs/schedules/root-tick/run", {}),
     "401 401 401 401 401 404 401 404"),
    (("POST schedules (save one)", "plone", "rest", "POST", "@asyncjobs/schedules",
      {"name": "rest-tick", "schedulable": "mark", "interval": 86400}),
     "401 403 403 403 201 401 201 201"),
    (("PATCH code schedule", "plone", "rest", "PATCH", "@asyncjobs/schedules/editor-tick",
      {"enabled": False}),
     "401 403 403 403 400 401 400 400"),
    (("PATCH /plone's saved schedule from /other", "other", "rest", "PATCH",
      "@asyncjobs/schedules/saved-tick@plone", {"enabled": False}),
     "401 401 401 401 401 404 401 404"),
    (("PATCH saved schedule", "plone", "rest", "PATCH", "@asyncjobs/schedules/saved-tick@plone",
      {"enabled": False}),
     "401 403 403 403 200 401 200 200"),
    (("POST pause saved schedule", "plone", "rest", "POST",
      "@asyncjobs/schedules/saved-tick@plone/pause", {}),
     "401 403 403 403 200 401 200 200"),
    (("POST run saved schedule", "plone", "rest", "POST",
      "@asyncjobs/schedules/saved-tick@plone/run", {}),
     "401 403 403 403 201 401 201 201"),
    (("POST pause root's saved schedule", "plone", "rest", "POST",
      "@asyncjobs/schedules/root-saved@plone/pause", {}),
     "401 403 403 403 200 401 200 200"),
    (("POST resume root's saved schedule", "plone", "rest", "POST",
      "@asyncjobs/schedules/root-saved@plone/resume", {}),
     "401 403 403 403 403 401 403 200"),
    (("POST resume /plone's saved schedule from /other", "other", "rest", "POST",
      "@asyncjobs/schedules/root-saved@plone/resume", {}),
     "401 401 401 401 401 404 401 404"),
    (("DELETE /plone's saved schedule from /other", "other", "rest", "DELETE",
      "@asyncjobs/schedules/saved-tick@plone", None),
     "401 401 401 401 401 404 401 404"),
    (("DELETE saved schedule", "plone", "rest", "DELETE",
      "@asyncjobs/schedules/saved-tick@plone", None),
     "401 403 403 403 204 401 204 204"),
]

#: Schedules of the world, daily (no slot comes during the test): name,
#: site, user id, user folder.
SCHEDULES = (
    ("editor-tick", ("", "plone"), "editor", ("", "plone", "acl_users")),
    ("root-tick", ("", "plone"), SITE_OWNER_NAME, ("", "acl_users")),
    ("other-tick", ("", OTHER_SITE_ID), None, None),
    ("engine-tick", None, None, None),
)


#: The saved schedule of the world (see :mod:`...schedules.saved`): daily,
#: in /plone, saved by its Site Administrator.
SAVED = {"schedulable": "mark", "interval": 86400, "arguments": {"value": "saved"}}
#: The saved schedule the Zope root's Manager saved in /plone, and paused.
ROOT_SAVED = {"schedulable": "mark", "interval": 86400, "arguments": {"value": "root"}}
#: The schedulable the saved schedules call.
MARK = Schedulable("mark", "plone.app.asyncjobs.tests.jobs:mark", "Leave a mark")


def _credentials(user):
    if user == "anonymous":
        return None
    if user == "rootmanager":
        return (SITE_OWNER_NAME, SITE_OWNER_PASSWORD)
    return (user, password(user))


def _queue(site, user_folder, user_id, func, *args, **options):
    setSite(site)
    login(user_folder, user_id)
    try:
        return jobs_api.queue_job(func, site, *args, **options)
    finally:
        logout()


@pytest.fixture
def world(two_sites, monkeypatch):
    """The jobs the rows name, finished where they should be; ``{name: id}``
    with the dispatcher's UUID and the base URLs."""
    monkeypatch.setattr(schedulables, "SCHEDULABLES", {MARK.name: MARK})
    app = two_sites["app"]
    plone, other = app["plone"], app[OTHER_SITE_ID]
    root_users = app.acl_users
    wait_for_poll(two_sites["asyncjobsDispatcher"])
    made = {
        "root_done": _queue(plone, root_users, SITE_OWNER_NAME, jobs.add, 1),
        "editor_done": _queue(plone, plone.acl_users, "editor", jobs.add, 2),
        "other_done": _queue(other, root_users, SITE_OWNER_NAME, jobs.add, 3),
    }
    for number in (1, 2, 3):
        made[f"removable_{number}"] = _queue(plone, root_users, SITE_OWNER_NAME, jobs.add, 4)
    queues = jobs_api.get_queues(plone)
    made["engine_done"] = queues[""].put(Job(max, 5, 6))
    wait_for_all_jobs(context=plone)
    made["root_event_callback"] = made["root_done"].callbacks[0]
    made["root_callback"] = made["root_done"].add_callback(Job(jobs.add, 9))
    for number in (1, 2, 3, 4):
        made[f"pending_{number}"] = _queue(plone, root_users, SITE_OWNER_NAME, jobs.add, 7,
                                           delay=timedelta(days=1))
    for name, site_path, user_id, user_folder in SCHEDULES:
        factory = site_path and SiteJobFactory(site_path, user_id, user_folder)
        engine_schedules.install(plone._p_jar, Schedule(
            name, jobs.add, Interval(timedelta(days=1)), args=(8,) if factory else (1, 2),
            job_factory=factory))
    setSite(plone)
    login(plone.acl_users, "siteadmin")
    try:
        saved.save(plone, queues, "saved-tick", SAVED, replace=False)
    finally:
        logout()
    login(root_users, SITE_OWNER_NAME)
    try:
        saved.save(plone, queues, "root-saved", ROOT_SAVED, replace=False).pause()
    finally:
        logout()
    transaction.commit()
    names = {name: job_id(job) for name, job in made.items()}
    names["not_a_job"] = str(u64(plone._p_oid))
    names["dispatcher"] = str(two_sites["asyncjobsDispatcher"].uuid)
    base = f"http://{two_sites['host']}:{two_sites['port']}"
    plone_jobs = {names[name] for name in ("root_done", "editor_done", "removable_1",
                                           "removable_2", "removable_3")}
    setSite(plone)
    return {"ids": names, "base": base, "app": app, "plone_jobs": plone_jobs}


def _token(world, site_id, user):
    """The CSRF token the console's confirmation page would give ``user``."""
    app = world["app"]
    site = app[site_id]
    setSite(site)
    if user == "rootmanager":
        login(app.acl_users, SITE_OWNER_NAME)
    elif SITE_USERS.get(user, (None,))[0] == site_id:
        login(site.acl_users, user)
    else:
        return "no-token-for-this-user"
    try:
        return createToken()
    finally:
        logout()
        setSite(app["plone"])


def _message_type(response):
    cookie = response.cookies.get("statusmessages")
    if not cookie:
        return ""
    messages = _decodeCookieValue(unquote(cookie.strip('"')))
    assert messages, f"cannot read the status message cookie {cookie!r}"
    return "ok" if all(m.type == "info" for m in messages) else "error"


def outcome(world, user, row):
    """What ``user`` gets for ``row``, as :data:`MATRIX` writes it."""
    name, site_id, kind, method, path, body = row
    path = path.format(**world["ids"])
    url = f"{world['base']}/{site_id}/{path}"
    options = {"auth": _credentials(user), "allow_redirects": False, "timeout": 60}
    if kind == "token":
        options["data"] = {"_authenticator": _token(world, site_id, user)}
    elif kind == "post":
        options["data"] = {}
    if kind in ("rest", "listing") and path.startswith("@asyncjobs"):
        options["headers"] = {"Accept": "application/json"}
        if body is not None:
            options["json"] = body
    transaction.commit()
    response = requests.request(method, url, **options)
    transaction.begin()
    status = str(response.status_code)
    if kind in ("post", "token") and response.status_code == 302:
        return status + _message_type(response)
    if kind == "live" and response.status_code == 200:
        return status + ("found" if response.json()["jobs"] else "missing")
    if kind == "listing" and response.status_code == 200:
        shown = response.text
        return status + ("+plone" if any(f'"{i}"' in shown for i in world["plone_jobs"]) else "")
    return status


@pytest.mark.parametrize("user", USERS)
def test_permission_matrix(world, user):
    column = USERS.index(user)
    differences = []
    for row, expected in MATRIX:
        want = expected.split()[column]
        got = outcome(world, user, row)
        if got != want:
            differences.append(f"{row[0]!r} ({row[3]} /{row[1]}/{row[4]}): expected {want}, "
                               f"got {got}")
    assert not differences, "cells that differ:\n" + "\n".join(differences)
