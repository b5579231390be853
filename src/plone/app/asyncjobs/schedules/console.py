"""What the console (REST API) shows of schedules and does to them.

Schedules belong to their site like jobs (:mod:`plone.app.asyncjobs.access`):
a Plone schedule to the site its jobs run in, an engine schedule (no site)
to the database-wide scope only; another site's schedule is not there
(``LookupError``).

Pausing and resuming a schedule declared in ZCML or code change what the
workers do for every site and undo the code's declaration, so they need
:func:`~plone.app.asyncjobs.access.may_manage_workers`; those of a schedule
saved in the site (:mod:`.saved`) need what saving it needs
(:func:`.saved.check_may_edit`).  "Run now" needs the same, and queues the
schedule's own job, which runs as the schedule's declared user; resuming
makes the schedule's next jobs run as that user: both are refused
(:class:`~plone.app.asyncjobs.access.RunAsRefused`) to a user who lacks
any of that user's roles, as a retry would be (:func:`check_may_run_as`).
Pausing lends no rights, so it needs no more than :func:`may_act`.
Every action is logged on ``plone.app.asyncjobs.admin`` with its actor.
"""
from plone.app.asyncjobs import access
from plone.app.asyncjobs.engine import schedules
from plone.app.asyncjobs.engine.clock import utcnow
from plone.app.asyncjobs.inspection import iso
from plone.app.asyncjobs.inspection import job_id
from plone.app.asyncjobs.inspection import logger
from plone.app.asyncjobs.schedules import saved


#: How many recent runs a listing shows per schedule.
RUNS_SHOWN = 10


def schedule_site(schedule):
    """The physical path of the site a schedule's jobs run in, or ``None``."""
    site_path = getattr(schedule.job_factory, "site_path", None)
    return None if site_path is None else tuple(site_path)


def _in_scope(record, scope):
    return scope.site_path is None or schedule_site(record.schedule) == scope.site_path


def _records(queues):
    found = schedules.find(queues._p_jar)
    return found.values() if found is not None else ()


def get_record(queues, name, scope):
    """The record of the schedule ``name`` in ``scope``; ``LookupError`` if none."""
    for record in _records(queues):
        if record.name == name and _in_scope(record, scope):
            return record
    raise LookupError(f"there is no schedule {name!r}")


def describe(record):
    """Plain facts of a schedule: its declaration, state, next and last runs
    (jobs by id; ``None`` for a slot whose job could not be made)."""
    schedule = record.schedule
    factory = schedule.job_factory
    return {
        "name": record.name,
        "trigger": str(schedule.trigger),
        "call": schedule.func,
        "site": "/".join(schedule_site(schedule) or ()) or None,
        "user": getattr(factory, "user_id", None),
        "queue": schedule.queue,
        "misfire": schedule.misfire,
        "enabled": schedule.enabled,
        "paused": record.paused,
        "next run": iso(record.next_slot()) if record.active else None,
        "last slot": iso(record.last_slot),
        "runs": [{"slot": iso(slot), "job": None if job is None else job_id(job), "note": note}
                 for slot, job, note in record.last_runs(RUNS_SHOWN)],
    }


def records_in(queues, scope):
    """The records of the schedules in ``scope``, by name."""
    return [record for record in sorted(_records(queues), key=lambda r: r.name)
            if _in_scope(record, scope)]


def list_schedules(queues, scope):
    """:func:`describe` of the schedules in ``scope``, by name."""
    return [describe(record) for record in records_in(queues, scope)]


def may_act(record, site):
    """Whether the current user may pause, resume and run ``record``."""
    if saved.is_saved(record):
        return saved.may_edit(site)
    return access.may_manage_workers(site)


def check_may_act(record, site):
    """:class:`~plone.app.asyncjobs.access.ScopeRefused` unless :func:`may_act`."""
    if saved.is_saved(record):
        saved.check_may_edit(site)
    else:
        access.check_manage_workers(site)


def pause(record, site, actor):
    check_may_act(record, site)
    record.pause()
    logger.info("%s paused schedule %r", actor, record.name)


def check_may_run_as(record, site):
    """:class:`~plone.app.asyncjobs.access.RunAsRefused` unless the current
    user may make the schedule's jobs run as the user it declares
    (:func:`~plone.app.asyncjobs.access.check_run_in`): nobody makes a job
    run with rights they lack, by "run now" or by resuming its schedule."""
    factory = record.schedule.job_factory
    if factory is None:
        return  # an engine schedule's jobs run as no Zope user
    execution = getattr(factory, "execution", None)
    if callable(execution):
        # Without making a job, whose schedulable may have been withdrawn:
        # resuming such a schedule is still allowed.
        access.check_run_in(execution(), site)
        return
    try:
        job = record.schedule.make_job(utcnow())
    except Exception:
        return  # its jobs cannot be made, so they run as nobody
    access.check_run_as(job, site)


def resume(record, site, actor):
    """Queue the schedule's slots again, from now on; refused to a user
    who may not make its jobs run as its declared user."""
    check_may_act(record, site)
    check_may_run_as(record, site)
    record.resume(utcnow())
    logger.info("%s resumed schedule %r", actor, record.name)


def run_now(queues, record, site, actor):
    """Queue the schedule's job now, as its declared user; return the job."""
    check_may_act(record, site)
    now = utcnow()
    job = record.schedule.make_job(now)
    access.check_run_as(job, site)
    record.run_now(queues, now, note=f"run now by {actor}", job=job)
    logger.info("%s ran schedule %r now as job %s", actor, record.name, job_id(job))
    return job
