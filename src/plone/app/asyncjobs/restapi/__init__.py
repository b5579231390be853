"""The REST API of the job console: plone.restapi services on the site root.

Every endpoint lives under the one service name ``@asyncjobs`` (see
:mod:`.services.routes`) and needs the permission
``plone.app.asyncjobs: Manage jobs``.  The facts and actions come from
:mod:`plone.app.asyncjobs.inspection`, shared with the control panel.
``docs/restapi.rst`` documents the endpoints with examples that the tests
replay.
"""
