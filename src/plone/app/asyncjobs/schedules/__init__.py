"""Recurring jobs in Plone: schedules that run in a site, as a declared user.

The engine's schedules (:mod:`plone.app.asyncjobs.engine.schedules`) queue
plain jobs.  Here a schedule's job is a :class:`.jobs.ScheduledJob`: it runs
like a job queued with ``api.queue_job`` in the schedule's site (the site
is its context), as the schedule's user, with the ``IJobSuccess`` /
``IJobFailure`` events.  The ``<asyncjobs:schedule>`` ZCML directive
(:mod:`.zcml`) declares one; every Zope process installs the declared
schedules in the database when it starts (:mod:`.install`).  A Site
Administrator saves schedules in a site's registry from the console or the
REST API (:mod:`.saved`); they run as the user who saved them and call only
the functions add-ons offer with ``<asyncjobs:schedulable>``
(:mod:`.schedulables`).
"""
