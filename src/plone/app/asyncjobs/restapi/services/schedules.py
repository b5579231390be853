"""``@asyncjobs/schedules``: recurring jobs, their next and last runs.

Reading needs what every endpoint needs (``Manage jobs``); pausing,
resuming and "run now" answer 403 to users who may not do database-wide
actions, and "run now" also to users who lack roles of the user the
schedule runs as (see :mod:`...schedules.console`).  A schedule of
another site is not there (404).
"""
from plone.app.asyncjobs.schedules import console


def _facts(service, facts):
    for run in facts["runs"]:
        if run["job"] is not None:
            run["@id"] = service.url("jobs", run["job"])
    return {"@id": service.url("schedules", facts["name"]), **facts}


def _record(service, name):
    return console.get_record(service.queues, name, service.scope)


def list_schedules(service):
    return {"@id": service.url("schedules"),
            "items": [_facts(service, facts)
                      for facts in console.list_schedules(service.queues, service.scope)]}


def get_schedule(service, name):
    return _facts(service, console.describe(_record(service, name)))


def pause_schedule(service, name):
    """Queue no more slots until resumed."""
    service.json_body(())
    record = _record(service, name)
    console.pause(record, service.context, service.actor)
    return _facts(service, console.describe(record))


def resume_schedule(service, name):
    """Queue slots again, from now on (the slots of the pause are dropped)."""
    service.json_body(())
    record = _record(service, name)
    console.resume(record, service.context, service.actor)
    return _facts(service, console.describe(record))


def run_schedule(service, name):
    """Queue the schedule's job now; answers 201 with the schedule, the
    new job first among its runs (``Location``: the job)."""
    service.json_body(())
    record = _record(service, name)
    job = console.run_now(service.queues, record, service.context, service.actor)
    facts = _facts(service, console.describe(record))
    service.request.response.setStatus(201)
    service.request.response.setHeader(
        "Location", service.url("jobs", console.job_id(job)))
    return facts
