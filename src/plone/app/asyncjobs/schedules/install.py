"""Store the schedules this process's ZCML declared in the database.

Every Zope process (instances and workers, which load the same ZCML) does
it when it starts (``IProcessStarting``), in a transaction of its own:
installing is idempotent, and a record keeps its state (last slot, runs,
paused) unless the declaration changed (see
:meth:`~plone.app.asyncjobs.engine.schedules.Schedules.install`).  A
process that finds no queues yet skips it: the worker installs the queues
when it starts, then the schedules.  Dispatchers see a newly installed
schedule at their next poll.
"""
import dataclasses
import logging

import transaction

from plone.app.asyncjobs.engine import schedules
from plone.app.asyncjobs.engine.queue import KEY
from plone.app.asyncjobs.engine.transactions import retry_conflicts
from plone.app.asyncjobs.schedules.zcml import DECLARED


logger = logging.getLogger("plone.app.asyncjobs")


def install_declared(db, declared=None):
    """Install ``declared`` (default: :data:`.zcml.DECLARED`) in ``db``;
    return how many, or ``None`` when the database has no queues."""
    declared = DECLARED if declared is None else declared
    if not declared:
        return 0
    manager = transaction.TransactionManager()
    connection = db.open(transaction_manager=manager)
    try:
        manager.begin()
        if connection.root().get(KEY) is None:
            logger.info("no job queues yet: the worker installs the declared schedules")
            return None
        # The jobs find the sites in the main database, whichever holds the queues.
        located = [dataclasses.replace(schedule, job_factory=dataclasses.replace(
            schedule.job_factory, database_name=db.database_name))
            for schedule in declared.values()]
        retry_conflicts(lambda: [schedules.install(connection, s) for s in located],
                        manager, "installing the declared schedules")
        return len(located)
    finally:
        manager.abort()
        connection.close()


def process_starting(event):
    """``IProcessStarting`` subscriber."""
    import Zope2

    install_declared(Zope2.DB)
