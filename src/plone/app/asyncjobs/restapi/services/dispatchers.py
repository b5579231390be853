"""``@asyncjobs/dispatchers``: the workers' dispatchers and their agents.

A dispatcher (a worker process, by UUID) has agents in each queue it
serves; an agent's size is how many jobs it runs at once.  Changes are
stored in the database: the dispatcher follows them at its next poll.
They affect every site of the database, so they need
:func:`...access.may_manage_workers` (403 otherwise); reading does not.
"""
from plone.app.asyncjobs import inspection
from plone.app.asyncjobs.restapi.services.queue_names import as_segment
from plone.app.asyncjobs.restapi.services.queue_names import from_segment


def with_links(service, dispatcher):
    """``dispatcher`` (facts of :func:`.inspection.overview`) with the URLs
    of itself and of its agents."""
    uuid = dispatcher["uuid"]
    for queue_name, agents in dispatcher["queues"].items():
        for agent in agents:
            agent["@id"] = service.url("dispatchers", uuid, "queues", as_segment(queue_name),
                                       "agents", agent["name"])
    return {"@id": service.url("dispatchers", uuid), **dispatcher}


def _dispatchers(service):
    return [with_links(service, facts)
            for facts in inspection.overview(service.queues, service.scope)["dispatchers"]]


def _dispatcher(service, uuid):
    for facts in _dispatchers(service):
        if facts["uuid"] == uuid:
            return facts
    raise LookupError(f"there is no dispatcher {uuid!r}")


def list_dispatchers(service):
    return {"@id": service.url("dispatchers"), "items": _dispatchers(service)}


def get_dispatcher(service, uuid):
    return _dispatcher(service, uuid)


def set_agent_size(service, uuid, queue_segment, agent_name):
    """``PATCH`` with ``{"size": n}``; replies the dispatcher."""
    service.check_manage_workers()
    body = service.json_body(("size",))
    size = body.get("size")
    if size is None:
        raise inspection.QueryError("size", "missing")
    if not isinstance(size, int) or isinstance(size, bool):
        raise inspection.QueryError("size", f"not a whole number: {size!r}")
    inspection.set_agent_size(service.queues, uuid, from_segment(queue_segment), agent_name,
                              size, service.actor)
    return _dispatcher(service, uuid)


def pause_dispatcher(service, uuid):
    """Stop the dispatcher's agents from starting jobs (running ones finish)."""
    service.check_manage_workers()
    service.json_body(())
    inspection.pause(service.queues, uuid, service.actor)
    return _dispatcher(service, uuid)


def resume_dispatcher(service, uuid):
    service.check_manage_workers()
    service.json_body(())
    inspection.resume(service.queues, uuid, service.actor)
    return _dispatcher(service, uuid)
