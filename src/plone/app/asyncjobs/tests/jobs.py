"""Job functions and event handlers for the tests.

Workers load job functions by module and name, so the tests import this
module by its full name (``plone.app.asyncjobs.tests.jobs``).
"""
import threading
import time

from AccessControl import getSecurityManager
from plone import api
from zope.component.hooks import getSite
from zope.globalrequest import getRequest


def describe(context):
    """Where the job runs: URLs, site, user, request."""
    request = getRequest()
    user = getSecurityManager().getUser()
    return {
        "url": context.absolute_url(),
        "path": "/".join(context.getPhysicalPath()),
        "site": "/".join(getSite().getPhysicalPath()),
        "portal_url": api.portal.get().absolute_url(),
        "user": user.getId(),
        "user_name": user.getUserName(),
        "api_user": api.user.get_current().getId(),
        "anonymous": api.user.is_anonymous(),
        "request_is_global": request is not None and request is context.REQUEST,
        "actual_url": request.get("ACTUAL_URL"),
        "request_url": request.get("URL"),
        "thread": threading.current_thread().name,
    }


def add(context, a, b=0):
    return a + b


def fail(context, message):
    raise ValueError(message)


def create_document(container, id, title="A document"):
    """Create a document; return its path, creators and owner."""
    doc = api.content.create(container=container, type="Document", id=id, title=title)
    return {
        "path": "/".join(doc.getPhysicalPath()),
        "creators": tuple(doc.listCreators()),
        "owner": doc.getOwner().getId(),
    }


def set_title(context, title):
    context.title = title
    context.reindexObject(idxs=["Title"])
    return context.title


def timed(context, seconds, label=None):
    """Sleep; return (label, start, end) in time.monotonic() seconds."""
    start = time.monotonic()
    time.sleep(seconds)
    return (label, start, time.monotonic())


def mark(context, value):
    """Leave a trace on the context."""
    context._asyncjobs_mark = value
    return value


def tag_request(context, value, write=False):
    """Leave ``value`` on the request; with ``write``, on the context too."""
    getRequest().other["asyncjobs tag"] = value
    if write:
        context._asyncjobs_mark = value
    return value


# -- events -------------------------------------------------------------------

events = []
_events_lock = threading.Lock()


def record_event(event):
    """Handler for IJobSuccess / IJobFailure: record what it saw."""
    user = getSecurityManager().getUser()
    site = getSite()
    entry = {
        "kind": type(event).__name__,
        "outcome": event.object,
        "job": repr(event.job),
        "job_oid": event.job._p_oid,
        "context": None if event.context is None else "/".join(event.context.getPhysicalPath()),
        "site": None if site is None else site.getId(),
        "user": user.getId(),
        "thread": threading.current_thread().name,
        "request tag": getRequest().get("asyncjobs tag"),
    }
    with _events_lock:
        events.append(entry)



def queue_another(context, a, b):
    """Queue ``add`` from inside a job; return that job (so this job's
    result becomes that job's result)."""
    from plone.app.asyncjobs import api as jobs_api

    return jobs_api.queue_job(add, context, a, b)


def create_and_rename(container, id, new_id):
    """Create content, then rename it in the same transaction (needs a
    savepoint of the job's transaction, as plone.api does)."""
    doc = api.content.create(container=container, type="Document", id=id, title="Temp")
    api.content.rename(obj=doc, new_id=new_id)
    return "/".join(doc.getPhysicalPath())


def catalog_paths(context, **query):
    return sorted(brain.getPath() for brain in api.content.find(**query))


_calls = {}
_calls_lock = threading.Lock()


def fail_first_call(context, key):
    """Raise ``ValueError`` the first time it runs for ``key`` in this
    process; later, return how many times it ran for ``key``."""
    with _calls_lock:
        calls = _calls[key] = _calls.get(key, 0) + 1
    if calls == 1:
        raise ValueError(f"first call for {key}")
    return calls


_gates = {}
_gates_lock = threading.Lock()


def gate(key):
    """The ``threading.Event`` that :func:`report_and_wait` for ``key`` waits on."""
    with _gates_lock:
        return _gates.setdefault(key, threading.Event())


def report_and_wait(context, key, done=3, total=10, message="working"):
    """Report ``done`` of ``total`` as the job's progress, then wait until
    ``gate(key)`` is set (at most 30 s); return ``done``."""
    from plone.app.asyncjobs.engine.progress import report_progress

    report_progress(done, total, message)
    if not gate(key).wait(30):
        raise TimeoutError(f"the gate {key!r} was not opened")
    return done


def wait_for_cancel(context, key, honour):
    """Open ``gate(key + "/running")``, then wait until ``gate(key)`` opens
    (at most 30 s) and return "finished"; meanwhile, with ``honour``, stop
    through ``check_cancelled()`` once asked to (without, never ask).
    However it ends, ``gate(key + "/ended")`` opens."""
    from plone.app.asyncjobs.engine.local import check_cancelled

    gate(f"{key}/running").set()
    deadline = time.monotonic() + 30
    try:
        while not gate(key).wait(0.02):
            if honour:
                check_cancelled()
            if time.monotonic() > deadline:
                raise TimeoutError(f"the gate {key!r} was not opened")
        return "finished"
    finally:
        gate(f"{key}/ended").set()


def step_gate(key, step):
    """The gate that :func:`report_in_steps` for ``key`` waits on before
    reporting ``step`` (1, 2, ...)."""
    return gate(f"{key}/step-{step}")


def open_step_gates(key, steps):
    """Open every gate of :func:`report_in_steps` for ``key``."""
    for step in range(1, steps + 1):
        step_gate(key, step).set()


def report_in_steps(context, key, steps=4, message="step"):
    """Report 0 of ``steps`` as the job's progress; then for each step wait
    until ``step_gate(key, step)`` is open (at most 30 s) and report
    ``step`` of ``steps``, except that the last step returns instead.
    Return ``steps``."""
    from plone.app.asyncjobs.engine.progress import report_progress

    for done in range(steps):
        report_progress(done, steps, f"{message} {done} of {steps}")
        if not step_gate(key, done + 1).wait(30):
            raise TimeoutError(f"the gate {key!r} of step {done + 1} was not opened")
    return steps
