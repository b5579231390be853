"""The two worker roles, registered by ``single_db.zcml`` / ``multi_db.zcml``."""
from zope.interface import implementer

from plone.app.asyncjobs.interfaces import IWorkerRole
from plone.app.asyncjobs.service.queues import ASYNC_DATABASE


@implementer(IWorkerRole)
class WorkerRole:
    def __init__(self, queues_database=None):
        self.queues_database = queues_database

    def __repr__(self):
        where = self.queues_database or "the main database"
        return f"<WorkerRole: queues in {where}>"


#: Queues in the main database.
SINGLE_DB = WorkerRole()

#: Queues in the database mounted as ``async`` in zope.conf.
MULTI_DB = WorkerRole(ASYNC_DATABASE)
