"""Functional tests of the REST API: real HTTP against the layer's WSGI server.

The fixtures are in ``conftest.py`` (``site``, ``client``, ``client_as``);
the helpers below are imported by the tests.  Objects a test makes are
committed by each request of a :class:`Client`, so the server sees them.
"""
import requests
import transaction
from plone.app.testing import SITE_OWNER_NAME
from plone.app.testing import SITE_OWNER_PASSWORD

from plone.app.asyncjobs.api import get_queues
from plone.app.asyncjobs.engine.testing.waiting import wait_until


#: The users the tests make requests as: name -> (password, roles in the
#: site; ``None`` for the site owner, a Manager of the Zope root).
USERS = {
    SITE_OWNER_NAME: (SITE_OWNER_PASSWORD, None),
    "siteadmin": ("secret-siteadmin", ["Site Administrator"]),
    "member": ("secret-member", ["Member"]),
}


class Client:
    """HTTP requests to ``@asyncjobs`` of the test's site, as one user.

    ``path`` is relative to ``.../plone/@asyncjobs``; a ``json`` body is
    sent as such (a POST without one sends ``{}``) and JSON is accepted.
    The test's transaction is committed before (so that the server sees
    what the test made) and begun again after (so that the test sees what
    the request did).
    """

    def __init__(self, portal_url, user=None):
        self.root = f"{portal_url}/@asyncjobs"
        self.auth = None if user is None else (user, USERS[user][0])

    def url(self, path=""):
        return f"{self.root}/{path}" if path else self.root

    def request(self, method, path="", **options):
        transaction.commit()
        options.setdefault("headers", {}).setdefault("Accept", "application/json")
        if method == "POST" and options.get("json") is None and "data" not in options:
            options["json"] = {}
        try:
            return requests.request(method, self.url(path), auth=self.auth, timeout=30,
                                    **options)
        finally:
            transaction.begin()

    def get(self, path="", **options):
        return self.request("GET", path, **options)

    def post(self, path, **options):
        return self.request("POST", path, **options)

    def patch(self, path, **options):
        return self.request("PATCH", path, **options)

    def delete(self, path, **options):
        return self.request("DELETE", path, **options)


def wait_until_idle(site, seconds=10):
    """Commit, then poll until no job is due or running and every agent has
    moved its finished jobs to its history."""
    transaction.commit()
    queues = get_queues(site)

    def busy():
        return [name for name, queue in queues.items()
                if queue.has_due_jobs() or any(
                    len(agent) for record in queue.dispatchers.values()
                    for agent in record.values())]

    wait_until(lambda: not busy(), seconds, sync=transaction.begin,
               describe=lambda: f"waiting for the queues {busy()} to be idle")
