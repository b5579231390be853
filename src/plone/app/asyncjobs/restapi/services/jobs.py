"""``@asyncjobs/jobs``: list jobs a page at a time, show, retry, cancel, delete."""
import transaction

from plone.app.asyncjobs import access
from plone.app.asyncjobs import inspection
from plone.app.asyncjobs.restapi.services.queue_names import from_segment


#: The query parameters of a listing, in the order its URLs give them
#: (see :class:`.inspection.JobQuery`).
LIST_PARAMETERS = ("state", "queue", "user", "callable", "text", "since", "until", "sort",
                   "size", "after")
#: Parameters every endpoint takes (see :class:`.service.AsyncJobsService`).
COMMON_PARAMETERS = ("scope",)


def job_facts(service, job, detail=True):
    """What :func:`.inspection.describe` says of ``job``, with its URL (its
    traceback for Managers only)."""
    facts = inspection.describe(job, detail=detail,
                                traceback=access.may_see_tracebacks(service.context))
    return {"@id": service.url("jobs", facts["id"]), **facts}


def _job(service, job_id):
    return inspection.get_job(service.queues, job_id, service.scope)


def _given_parameters(form):
    """The listing's non-empty parameters in :data:`LIST_PARAMETERS` order;
    ``queue`` as a list, the others once each."""
    unknown = sorted(set(form) - set(LIST_PARAMETERS) - set(COMMON_PARAMETERS))
    if unknown:
        raise inspection.QueryError(unknown[0], "not a parameter of this listing")
    given = {}
    for name in LIST_PARAMETERS:
        value = form.get(name)
        if isinstance(value, (list, tuple)):
            if name != "queue":
                raise inspection.QueryError(name, "given more than once")
            value = [item for item in value if item]
        elif name == "queue" and value:
            value = [value]
        if value:
            given[name] = value
    return given


def _query(service, given):
    """The :class:`.inspection.JobQuery` of ``given``, with real queue names
    (checked as the query reads them: as text)."""
    params = dict(given)
    if "queue" in given:
        params["queue"] = [from_segment(segment) for segment in given["queue"]]
    query = inspection.JobQuery(params)
    for name in query.queues or ():
        if name not in service.queues:
            raise inspection.QueryError("queue", f"there is no queue {name!r}")
    return query


def _total(service, query):
    """How many jobs the whole listing has, if that is known without
    filtering them (no filter, no time bounds) and counting did not stop at
    :data:`.inspection.COUNT_LIMIT`; else ``None``."""
    if query.filtered() or query.since is not None or query.until is not None:
        return None
    total = 0
    for name, queue in service.queues.items():
        if query.queues is None or name in query.queues:
            counts, capped = inspection.count_jobs(name, queue, service.scope)
            if query.state in capped:
                return None
            total += counts[query.state]
    return total


def list_jobs(service):
    """``GET @asyncjobs/jobs?...``: one page, and the URL of the next."""
    given = _given_parameters(service.request.form)
    query = _query(service, given)
    page = query.run(service.queues, service.scope)
    first = {name: value for name, value in given.items() if name != "after"}
    batching = {"@id": service.url("jobs", query=given),
                "first": service.url("jobs", query=first)}
    if page["next"] is not None:
        batching["next"] = service.url("jobs", query={**first, "after": page["next"]})
    return {
        "@id": batching["@id"],
        "items": [{"@id": service.url("jobs", item["id"]), **item} for item in page["items"]],
        "items_total": _total(service, query),
        "batching": batching,
        "scanned": page["scanned"],
        "exhausted": page["exhausted"],
    }


def get_job(service, job_id):
    return job_facts(service, _job(service, job_id))


def retry_job(service, job_id):
    """Queue a copy of a finished job; 201 with the copy."""
    service.json_body(())
    new = inspection.retry(_job(service, job_id), service.actor, service.context)
    transaction.savepoint(optimistic=True)  # gives the copy's callbacks their ids
    return service.created(job_facts(service, new))


def cancel_job(service, job_id):
    """Cancel a pending job (it completes as failed with ``CancelledError``),
    or ask a running one to stop (its ``cancel_requested`` says when)."""
    service.json_body(())
    job = _job(service, job_id)
    inspection.cancel(job, service.actor)
    return job_facts(service, job)


def delete_job(service, job_id):
    """Forget a finished job; 204."""
    inspection.remove(_job(service, job_id), service.actor)
    return service.reply_no_content()
