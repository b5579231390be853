"""Queuing jobs from Plone, and running them where they were queued.

* :mod:`.service` - the ``IAsyncService`` utility (plone.app.async's API);
* :mod:`.jobs` - :class:`~.jobs.ContextJob`, the job that restores the site,
  the user, the request and the context in the worker;
* :mod:`.context` - what is recorded at queue time and how it is restored;
* :mod:`.queues` - finding (or creating) the queues in the single- or
  multi-database layout;
* :mod:`.events` and :mod:`.exceptions`.
"""
