"""``@asyncjobs/schedules``: recurring jobs, their next and last runs.

Reading needs what every endpoint needs (``Manage jobs``).  Pausing,
resuming and "run now" answer 403 to users who may not do them (for a
schedule declared in ZCML or code: database-wide actions; for one saved in
the site: ``Manage jobs``, as reading), and resuming and "run now" also to
users who lack roles of the user the schedule runs as (see
:mod:`...schedules.console`).  A
schedule of another site is not there (404).

POST ``schedules`` saves a new schedule in the site, PATCH and DELETE
``schedules/<name>`` change and delete one (:mod:`...schedules.saved`):
``Manage jobs`` on the site, 400 naming the field of a bad declaration,
400 for a schedule declared in ZCML or code.  Every schedule carries
``saved``: the declaration saved in the site, or ``null``.
"""
from plone.app.asyncjobs.schedules import console
from plone.app.asyncjobs.schedules import saved


#: What a body may give to save a schedule.
FIELDS = tuple(saved.DEFAULTS)


def _declaration(service, record):
    if not saved.is_saved(record):
        return None
    try:
        name = saved.saved_name(record, service.context)
    except ValueError:
        return None  # another site's, seen in the database-wide scope
    return saved.saved(service.context).get(name)


def _facts(service, record):
    facts = console.describe(record)
    for run in facts["runs"]:
        if run["job"] is not None:
            run["@id"] = service.url("jobs", run["job"])
    return {"@id": service.url("schedules", facts["name"]), **facts,
            "saved": _declaration(service, record)}


def _record(service, name):
    return console.get_record(service.queues, name, service.scope)


def list_schedules(service):
    return {"@id": service.url("schedules"),
            "items": [_facts(service, record)
                      for record in console.records_in(service.queues, service.scope)]}


def get_schedule(service, name):
    return _facts(service, _record(service, name))


def pause_schedule(service, name):
    """Queue no more slots until resumed."""
    service.json_body(())
    record = _record(service, name)
    console.pause(record, service.context, service.actor)
    return _facts(service, record)


def resume_schedule(service, name):
    """Queue slots again, from now on (the slots of the pause are dropped)."""
    service.json_body(())
    record = _record(service, name)
    console.resume(record, service.context, service.actor)
    return _facts(service, record)


def run_schedule(service, name):
    """Queue the schedule's job now; answers 201 with the schedule, the
    new job first among its runs (``Location``: the job)."""
    service.json_body(())
    record = _record(service, name)
    job = console.run_now(service.queues, record, service.context, service.actor)
    facts = _facts(service, record)
    service.request.response.setStatus(201)
    service.request.response.setHeader(
        "Location", service.url("jobs", console.job_id(job)))
    return facts


def create_schedule(service):
    """Save a new schedule (``name`` and the declaration) as the current
    user; 201 with the schedule (``Location``: its URL)."""
    data = service.json_body(("name", *FIELDS))
    name = data.pop("name", None)
    record = saved.save(service.context, service.queues, name, data, replace=False)
    return service.created(_facts(service, record))


def change_schedule(service, name):
    """Change a saved schedule (the fields given); the current user
    becomes its user."""
    data = service.json_body(FIELDS)
    record = _record(service, name)
    record = saved.save(service.context, service.queues,
                        saved.saved_name(record, service.context), data, replace=True)
    return _facts(service, record)


def delete_schedule(service, name):
    """Delete a saved schedule (its queued jobs stay); 204."""
    record = _record(service, name)
    saved.delete(service.context, service.queues, saved.saved_name(record, service.context))
    return service.reply_no_content()
