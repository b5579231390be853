"""``POST @asyncjobs/purge``: forget jobs that finished ``days`` days ago."""
from plone.app.asyncjobs import inspection


def purge_jobs(service):
    service.check_manage_workers()
    days = service.json_body(("days",)).get("days")
    if days is None:
        raise inspection.QueryError("days", "missing")
    if not isinstance(days, (int, float)) or isinstance(days, bool):
        raise inspection.QueryError("days", f"not a number: {days!r}")
    return {"removed": inspection.purge(service.queues, days, service.actor)}
