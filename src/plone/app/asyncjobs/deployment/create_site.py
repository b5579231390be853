"""Create the Plone site with the add-on and a non-Manager user.

Run by ``bin/instance run .../create_site.py`` (``app`` is injected); the
settings come from environment variables (see
``plone.app.asyncjobs.deployment.Deployment.create_site``).  Idempotent:
an existing site is kept, the profile and the user are only added when
missing.
"""
import os
import sys

import transaction
from AccessControl.SecurityManagement import newSecurityManager
from Testing.makerequest import makerequest
from zope.component.hooks import setSite


SITE_ID = os.environ.get("ASYNCJOBS_SITE_ID", "Plone")
TITLE = os.environ.get("ASYNCJOBS_SITE_TITLE", "plone.app.asyncjobs demo")
USER = os.environ.get("ASYNCJOBS_USER")
PASSWORD = os.environ.get("ASYNCJOBS_PASSWORD")
PROFILE = "plone.app.asyncjobs:default"


def main(app):
    app = makerequest(app)
    admin = app.acl_users.getUserById("admin")
    if admin is None:
        sys.exit("no admin user in the root acl_users")
    newSecurityManager(None, admin.__of__(app.acl_users))
    if SITE_ID not in app.objectIds():
        from plone.distribution.api import site as site_api

        site_api.create(app, "classic", {
            "site_id": SITE_ID,
            "title": TITLE,
            "description": "",
            "default_language": "en",
            "portal_timezone": "UTC",
            "setup_content": False,
        })
        print(f"created site {SITE_ID!r}")
    site = app[SITE_ID]
    setSite(site)
    from plone import api

    from Products.CMFPlone.utils import get_installer

    installer = get_installer(site, site.REQUEST)
    if not installer.is_product_installed("plone.app.asyncjobs"):
        installer.install_product("plone.app.asyncjobs")
        print(f"installed {PROFILE}")
    if USER and api.user.get(username=USER) is None:
        api.user.create(email=f"{USER}@example.org", username=USER, password=PASSWORD,
                        roles=("Member",))
        api.user.grant_roles(username=USER, obj=site, roles=["Contributor", "Editor"])
        print(f"created user {USER!r} (Member; Contributor and Editor in the site)")
    transaction.commit()
    print("ASYNCJOBS-SITE-READY")


main(app)  # noqa: F821
