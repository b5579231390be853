"""Build a database as plone.app.async and zc.async left it.

The classes below stand in for zc.async's: while :func:`zc_async_classes`
is active they are importable under zc.async's module and class names
(``zc.async.queue.Queue``, ``zc.async.job.Job``, ``zc.twist.Failure``...),
so the records written meanwhile name those classes, as an old site's
records do.  Once it ends, the names cannot be imported any more and the
objects load broken, as on Python 3.

Only the attributes the migration reads are modelled: the jobs'
``_callable_root``, ``_callable_name``, ``args``, ``_status_id`` and
``parent``, and containers holding the jobs where zc.async held them.
"""
import contextlib
import sys
import types

from BTrees.OOBTree import OOBTree
from persistent import Persistent
from persistent.list import PersistentList
from persistent.mapping import PersistentMapping


class Queues(Persistent):
    def __init__(self):
        self._data = OOBTree()


class Queue(Persistent):
    def __init__(self):
        self._queue = PersistentList()
        self._held = OOBTree()
        self.dispatchers = PersistentMapping()
        self.quotas = PersistentMapping()


class DispatcherAgents(PersistentMapping):
    pass


class Agent(Persistent):
    def __init__(self):
        self._data = PersistentList()
        self.completed = PersistentList()


class Job(Persistent):
    def __init__(self, callable, *args, status_id=0, parent=None, name=None):
        self._callable_root = callable
        self._callable_name = name
        self.args = PersistentList(args)
        self.kwargs = PersistentMapping()
        self._status_id = status_id
        self.parent = parent
        self.callbacks = PersistentList()
        self.annotations = OOBTree()
        self._result = None


class Failure:
    """zc.twist's failure, stored inline in the job's record."""

    def __init__(self, message):
        self.value = message


def _executeAsUser(context_path, portal_path, uf_path, user_id, func, *args, **kwargs):
    """plone.app.async's service function."""


def make_pdf(context, size):
    """A job function of an add-on."""


def send_mail(context, to):
    """Another one."""


def reindex():
    """A job queued with zc.async directly."""


#: Where each stand-in lives while :func:`zc_async_classes` is active.
_MODULES = {
    "zc.async": {},
    "zc.async.queue": {"Queues": Queues, "Queue": Queue, "DispatcherAgents": DispatcherAgents},
    "zc.async.agent": {"Agent": Agent},
    "zc.async.job": {"Job": Job},
    "zc.twist": {"Failure": Failure},
    "plone.app.async": {},
    "plone.app.async.service": {"_executeAsUser": _executeAsUser},
    "collective.pdfs": {},
    "collective.pdfs.jobs": {"make_pdf": make_pdf, "send_mail": send_mail,
                             "reindex": reindex},
}


@contextlib.contextmanager
def zc_async_classes():
    """Make the stand-ins importable under zc.async's names meanwhile."""
    originals = {}
    for module_name, members in _MODULES.items():
        module = types.ModuleType(module_name)
        for name, member in members.items():
            originals[member] = (member.__module__, member.__qualname__)
            member.__module__ = module_name
            member.__qualname__ = name
            setattr(module, name, member)
        sys.modules[module_name] = module
    try:
        yield
    finally:
        for module_name in _MODULES:
            del sys.modules[module_name]
        for member, (module_name, qualname) in originals.items():
            member.__module__, member.__qualname__ = module_name, qualname


def _service_job(site, func, *args, status_id=0, parent=None):
    portal_path = ("", site)
    return Job(_executeAsUser, portal_path + ("doc",), portal_path,
               portal_path + ("acl_users",), "editor",
               func, *args, status_id=status_id, parent=parent)


def build(main_root, queues_connection, content):
    """Store zc.async's data as a worker left it (call inside
    :func:`zc_async_classes`), with the queues in ``queues_connection``'s
    database and the main root referring to them.  ``content`` is a
    persistent object of the site that one job was to call a method of.
    Returns what a survey should report as never completed, by
    ``(status, callable, site)``."""
    queues = Queues()
    queues_connection.add(queues)
    queues_connection.root()["zc.async"] = queues
    main_root["zc.async"] = queues
    queue = queues._data[""] = Queue()
    record = queue.dispatchers["a-dispatcher-uuid"] = DispatcherAgents()
    agent = record["main"] = Agent()

    pending = [
        _service_job("plone", make_pdf, 800, parent=queue),
        _service_job("plone", make_pdf, 1200, parent=queue),
        _service_job("other", send_mail, "editor@example.org", parent=queue),
        Job(content, name="reindexObject", parent=queue),
    ]
    queue._queue.extend(pending)
    callback = Job(reindex, parent=pending[0])
    pending[0].callbacks.append(callback)
    agent._data.append(_service_job("plone", make_pdf, 400, parent=agent))
    agent._data.append(Job(reindex, status_id=1, parent=agent))
    done = Job(reindex, status_id=3, parent=agent)
    done._result = Failure("it broke")
    agent.completed.append(done)
    return {
        ("pending", "collective.pdfs.jobs.make_pdf", "/plone"): 2,
        ("pending", "collective.pdfs.jobs.send_mail", "/other"): 1,
        ("pending", f"{type(content).__module__}.{type(content).__qualname__} "
                    ":reindexObject", "?"): 1,
        ("assigned", "collective.pdfs.jobs.make_pdf", "/plone"): 1,
        ("active", "collective.pdfs.jobs.reindex", "?"): 1,
    }
