"""Add a second Plone site, with the add-on and a Site Administrator of its own.

Run by ``bin/instance run .../deployment_other_site.py`` (``app`` is
injected) in the deployment of ``test_security_deployment.py``, next to the
site ``deployment.create_site`` made; settings from the environment:
``ASYNCJOBS_OTHER_SITE`` (the site id), ``ASYNCJOBS_OTHER_ADMIN`` and
``ASYNCJOBS_OTHER_PASSWORD`` (the user, in the new site's user folder).
"""
import os

import transaction
from AccessControl.SecurityManagement import newSecurityManager
from Products.CMFPlone.factory import addPloneSite
from Testing.makerequest import makerequest


def main(app):
    app = makerequest(app)
    newSecurityManager(None, app.acl_users.getUserById("admin").__of__(app.acl_users))
    site_id = os.environ["ASYNCJOBS_OTHER_SITE"]
    addPloneSite(app, site_id, title="Other site", default_language="en",
                 extension_ids=("plone.app.contenttypes:default",
                                "plone.app.asyncjobs:default"))
    app[site_id].acl_users.userFolderAddUser(
        os.environ["ASYNCJOBS_OTHER_ADMIN"], os.environ["ASYNCJOBS_OTHER_PASSWORD"],
        ["Member", "Site Administrator"], [])
    transaction.commit()
    print("ASYNCJOBS-OTHER-SITE-READY")


main(app)  # noqa: F821
