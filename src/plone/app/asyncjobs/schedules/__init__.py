"""Recurring jobs in Plone: schedules that run in a site, as a declared user.

The engine's schedules (:mod:`plone.app.asyncjobs.engine.schedules`) queue
plain jobs.  Here a schedule's job is a :class:`.jobs.ScheduledJob`: it runs
like a job queued with ``api.queue_job`` in the schedule's site (the site
is its context), as the schedule's user, with the ``IJobSuccess`` /
``IJobFailure`` events.  The ``<asyncjobs:schedule>`` ZCML directive
(:mod:`.zcml`) declares one; every Zope process installs the declared
schedules in the database when it starts (:mod:`.install`).
"""
