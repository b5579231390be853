"""Schedules saved in a site: declared in its registry, from the control
panel or the REST API, and run as the user who saved them.

A saved schedule names a :mod:`schedulable <.schedulables>` (never a
dotted name: whoever saves one may not run arbitrary Python), a cron
expression in a time zone or an interval, the callable's arguments (a JSON
object, passed as keyword arguments after the site), the queue, quotas,
retry and misfire policies, and whether it is enabled.

Who it runs as
    The user who saved it last, in the site it was saved in: saving
    records that user (whoever edits a schedule becomes its user), so its
    jobs never have rights that user lacks.  Saving, deleting, pausing,
    resuming and "run now" need :data:`MANAGE` on the site (``Manage
    jobs``: Site Administrators and Managers); resuming and "run now"
    also every role of the schedule's user (see :mod:`.console`).

Where it is kept
    The declarations are the JSON record ``plone.app.asyncjobs.saved_schedules``
    of the site's registry, by name.  Saving also installs the schedule
    among the engine's schedules (:func:`..engine.schedules.install`) under
    :func:`engine_name` (``nightly@plone``), in the same transaction,
    so that the workers run it like any other (one job per slot).  Only
    saving installs: a record changed by other means (the registry editor,
    a profile) runs nothing until saved again here, with its saver as its
    user.  ZCML schedule names may not contain ``@``, so the names of the
    two kinds never clash, nor those of two sites.
"""
import dataclasses
import json
import re
from dataclasses import dataclass
from datetime import timedelta

from AccessControl import getSecurityManager
from plone.registry.interfaces import IRegistry
from Products.CMFCore.interfaces import ISiteRoot
from zope.component import getUtility

from plone.app.asyncjobs import access
from plone.app.asyncjobs.engine import retry
from plone.app.asyncjobs.engine import schedules
from plone.app.asyncjobs.engine.clock import utcnow
from plone.app.asyncjobs.engine.triggers import Cron
from plone.app.asyncjobs.engine.triggers import Interval
from plone.app.asyncjobs.engine.validation import is_finite_number
from plone.app.asyncjobs.inspection import MAX_JSON_DEPTH
from plone.app.asyncjobs.inspection import QueryError
from plone.app.asyncjobs.inspection import json_depth
from plone.app.asyncjobs.inspection import logger
from plone.app.asyncjobs.schedules import schedulables
from plone.app.asyncjobs.schedules.jobs import SiteJobFactory
from plone.app.asyncjobs.service.context import SYSTEM_USER
from plone.app.asyncjobs.service.context import ExecutionContext


#: Save, change and delete a site's schedules, and pause, resume and run
#: them: the console's permission (Site Administrators and Managers).  A
#: saved schedule runs as whoever saved it, so saving lends no rights.
MANAGE = access.MANAGE_JOBS
#: The registry record of the declarations (JSON).
RECORD = "plone.app.asyncjobs.saved_schedules"
#: What a saved schedule's name may be.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}\Z")
#: How deeply a saved schedule's arguments may nest: they fit in a REST
#: body (:data:`~plone.app.asyncjobs.inspection.MAX_JSON_DEPTH` deep, the
#: arguments one level down), whether saved there or in the form.
MAX_ARGUMENTS_DEPTH = MAX_JSON_DEPTH - 1
#: The most bytes of the JSON (UTF-8) of a saved schedule's arguments: a
#: REST body's.
MAX_ARGUMENTS_BYTES = 64 * 1024
_TOO_DEEP = f"nested more than {MAX_ARGUMENTS_DEPTH} levels deep"
#: The fields of a declaration, with their defaults.
DEFAULTS = {
    "schedulable": None, "cron": None, "interval": None, "timezone": "UTC",
    "arguments": {}, "queue": "", "quota_names": [], "retry_policy": None,
    "misfire": schedules.ONCE, "misfire_grace": None, "enabled": True,
}


class EditRefused(access.ScopeRefused):
    """The acting user may not save, delete, pause, resume or run the
    schedules saved in the site (answered as a refused scope: 403)."""


@dataclass(frozen=True)
class SavedJobFactory(SiteJobFactory):
    """The job factory of a saved schedule: makes the job only while its
    function is still a schedulable (an integrator may withdraw one)."""

    def __call__(self, schedule, slot):
        if not schedulables.allows(schedule.func):
            raise LookupError(f"{schedule.func!r} is no longer a schedulable")
        return super().__call__(schedule, slot)


def is_saved(record):
    """Whether the engine schedule ``record`` was saved in a site."""
    return isinstance(record.schedule.job_factory, SavedJobFactory)


def engine_name(site_path, name):
    """The engine's name of the schedule ``name`` saved in the site at
    ``site_path``: ``nightly@plone``, ``nightly@folder:plone`` (Zope ids
    hold no ``:``, names no ``@``)."""
    return f"{name}@{':'.join(site_path[1:])}"


def declared_name(name):
    """The name a schedule was saved under, from its engine ``name`` (the
    inverse of :func:`engine_name`)."""
    return name.rpartition("@")[0]


def may_edit(site):
    return bool(getSecurityManager().checkPermission(MANAGE, site))


def check_may_edit(site):
    if not may_edit(site):
        raise EditRefused(f"the schedules saved in this site need the permission {MANAGE!r}")


def saved_name(record, site):
    """The name under which ``record`` was saved in ``site``; ``QueryError``
    for a schedule declared in ZCML or code (change it there)."""
    factory = record.schedule.job_factory
    if not is_saved(record) or tuple(factory.site_path) != tuple(site.getPhysicalPath()):
        raise QueryError("name", f"schedule {record.name!r} is declared in ZCML or code: "
                         "change it there")
    return declared_name(record.name)


# -- declarations ----------------------------------------------------------------------


def _number(field, value, minimum):
    if not is_finite_number(value) or value < minimum:
        raise QueryError(field, f"must be a number of seconds of at least {minimum}")
    return float(value)


def check_name(name):
    if not isinstance(name, str) or not NAME.match(name):
        raise QueryError("name", "letters, digits, '.', '_' and '-' (at most 100), "
                         "starting with a letter or digit")
    return name


def parse_arguments(text):
    """The value of a form's JSON text (``QueryError`` if it is not JSON,
    longer than :data:`MAX_ARGUMENTS_BYTES` or nested too deeply to be
    read; :func:`declaration` checks that it is an object, and its depth)."""
    text = text or "{}"
    if len(text.encode()) > MAX_ARGUMENTS_BYTES:
        raise QueryError("arguments", f"longer than {MAX_ARGUMENTS_BYTES} bytes")
    try:
        return json.loads(text)
    except RecursionError:
        raise QueryError("arguments", _TOO_DEEP) from None
    except ValueError as error:
        raise QueryError("arguments", f"not valid JSON: {error}") from None


def _check_arguments(arguments):
    """``QueryError`` unless ``arguments`` is a JSON object within
    :data:`MAX_ARGUMENTS_DEPTH` and :data:`MAX_ARGUMENTS_BYTES` (checked
    before anything recurses into it: storing it pickles it)."""
    if not isinstance(arguments, dict):
        raise QueryError("arguments", "must be a JSON object (keyword arguments)")
    if json_depth(arguments) > MAX_ARGUMENTS_DEPTH:
        raise QueryError("arguments", _TOO_DEEP)
    try:
        text = json.dumps(arguments, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        raise QueryError("arguments", "must be a JSON object (keyword arguments)") from None
    if len(text.encode()) > MAX_ARGUMENTS_BYTES:
        raise QueryError("arguments", f"longer than {MAX_ARGUMENTS_BYTES} bytes")


def declaration(data):
    """The complete, checked declaration of ``data`` (fields of
    :data:`DEFAULTS`, missing ones defaulted); ``QueryError`` naming the
    field for anything unacceptable."""
    unknown = sorted(set(data) - set(DEFAULTS))
    if unknown:
        raise QueryError(unknown[0], "not a field of a schedule")
    found = {**DEFAULTS, **data}
    try:
        schedulables.lookup(found["schedulable"])
    except ValueError as error:
        raise QueryError("schedulable", str(error)) from None
    if (found["cron"] in (None, "")) == (found["interval"] in (None, "")):
        raise QueryError("cron", "give either a cron expression or an interval")
    if found["cron"] in (None, ""):
        found["cron"] = None
        found["interval"] = _number("interval", found["interval"], 1)
    else:
        found["interval"] = None
    if found["misfire_grace"] is not None:
        found["misfire_grace"] = _number("misfire_grace", found["misfire_grace"], 0)
    _check_slots(found)
    _check_arguments(found["arguments"])
    if not isinstance(found["queue"], str):
        raise QueryError("queue", "must be a queue name")
    quotas = found["quota_names"]
    if not isinstance(quotas, list) or not all(isinstance(q, str) for q in quotas):
        raise QueryError("quota_names", "must be a list of quota names")
    if found["retry_policy"] in ("", None):
        found["retry_policy"] = None
    else:
        try:
            retry.check_factory(found["retry_policy"])
        except (LookupError, TypeError, ValueError) as error:
            raise QueryError("retry_policy", str(error)) from None
    if found["misfire"] not in schedules.MISFIRE_POLICIES:
        raise QueryError("misfire", f"one of {', '.join(schedules.MISFIRE_POLICIES)}")
    if not isinstance(found["enabled"], bool):
        raise QueryError("enabled", "must be true or false")
    return found


def _check_queue(queues, found):
    """``QueryError`` unless the queue and its quotas exist (a slot's job
    would otherwise fail to be queued, at every slot)."""
    try:
        queue = queues[found["queue"]]
    except KeyError:
        raise QueryError("queue", f"there is no queue {found['queue']!r}") from None
    try:
        queue.quotas.check_names(found["quota_names"])
    except ValueError as error:
        raise QueryError("quota_names", str(error)) from None


def _check_slots(found):
    """``QueryError`` naming the field unless the workers can compute the
    slots of ``found``: its trigger can be made (the engine refuses one
    without a next slot: a cron that never fires, an interval past the last
    date), and so can its first slot within the misfire grace."""
    field = "cron" if found["cron"] is not None else "interval"
    try:
        made = trigger(found)
    except OverflowError:
        raise QueryError(field, "too long: its next slot is after the last date") from None
    except (TypeError, ValueError) as error:
        raise QueryError("timezone" if "timezone" in str(error) else field,
                         str(error)) from None
    if found["misfire_grace"] is not None:
        try:
            made.next_after(utcnow() - timedelta(seconds=found["misfire_grace"]))
        except OverflowError:
            raise QueryError("misfire_grace",
                             "too long: it reaches before the first date") from None


def trigger(found):
    """The engine trigger of a declaration."""
    if found["cron"] is not None:
        return Cron(found["cron"], found["timezone"] or "UTC")
    return Interval(timedelta(seconds=found["interval"]))


def to_schedule(site_path, name, found, user):
    """The engine schedule of the declaration ``found``, running as
    ``user`` (the :class:`ExecutionContext` of the saving request)."""
    options = {}
    if found["misfire_grace"] is not None:
        options["misfire_grace"] = timedelta(seconds=found["misfire_grace"])
    factory = SavedJobFactory(tuple(site_path), user.user_id, user.user_folder_path,
                              user.database_name)
    return schedules.Schedule(
        engine_name(site_path, name), schedulables.lookup(found["schedulable"]).handler,
        trigger(found), kwargs=found["arguments"], queue=found["queue"],
        quota_names=tuple(found["quota_names"]), retry_policy=found["retry_policy"],
        misfire=found["misfire"], enabled=found["enabled"], job_factory=factory, **options)


# -- the registry ------------------------------------------------------------------------


def saved(site):
    """The declarations saved in ``site``'s registry, by name."""
    registry = getUtility(IRegistry, context=site)
    return json.loads(registry.get(RECORD) or "{}")


def _store(site, declarations):
    registry = getUtility(IRegistry, context=site)
    registry[RECORD] = json.dumps(declarations, sort_keys=True, indent=1)


def save(site, queues, name, data, replace):
    """Save the schedule ``name`` of ``data`` (see :func:`declaration`) in
    ``site`` as the current user, and install it; return its engine record.

    ``replace`` false adds a new schedule (``QueryError`` if the name is
    taken); true changes one (``LookupError`` if there is none), fields
    missing from ``data`` keeping their values."""
    check_may_edit(site)
    check_name(name)
    declarations = saved(site)
    if replace and name not in declarations:
        raise LookupError(f"there is no schedule {name!r}")
    if not replace and name in declarations:
        raise QueryError("name", f"a schedule {name!r} exists already")
    previous = {key: value for key, value in declarations.get(name, {}).items()
                if key in DEFAULTS}
    found = declaration({**previous, **data})
    _check_queue(queues, found)
    user = ExecutionContext.capture(site)
    if user.user_id is None or user.user_folder_path == SYSTEM_USER:
        # Zope's system user has no id (it would be recorded as Anonymous).
        raise EditRefused("a schedule runs as the user who saves it: save it as a real user")
    site_path = tuple(site.getPhysicalPath())
    schedule = to_schedule(site_path, name, found, user)
    existing = schedules.find(queues._p_jar)
    if existing is not None and schedule.name in existing and not is_saved(
            existing[schedule.name]):
        raise QueryError("name", f"code declares a schedule {schedule.name!r} already")
    declarations[name] = {**found, "user": user.user_id,
                          "user_folder": "/".join(user.user_folder_path or ()) or None}
    _store(site, declarations)
    record = schedules.install(queues._p_jar, schedule)
    logger.info("%s saved schedule %r in %s", user.user_id, name, "/".join(site_path))
    return record


def _installed(site_path, connection):
    """The engine's schedules and the names of those saved in the site at
    ``site_path``."""
    found = schedules.find(connection)
    names = [record.name for record in (found.values() if found is not None else ())
             if is_saved(record) and tuple(record.schedule.job_factory.site_path) == site_path]
    return found, names


def _remove_all(site_path, connection, why):
    """Remove the engine schedules saved in the site at ``site_path``;
    return their names."""
    found, names = _installed(site_path, connection)
    for name in names:
        found.remove(name)
        logger.info("schedule %r removed %s %s", name, why, "/".join(site_path))
    return names


def remove_orphans(app):
    """Remove the engine schedules saved in sites that are no longer in the
    Zope application ``app``: sites deleted before their schedules went
    with them (see :func:`site_moving`), whose jobs could only fail.
    Returns their names."""
    found = schedules.find(app._p_jar)
    gone = [record.name for record in (found.values() if found is not None else ())
            if is_saved(record) and _site_at(app, record.schedule.job_factory.site_path) is None]
    for name in gone:
        found.remove(name)
        logger.info("schedule %r removed: its site is gone", name)
    return gone


def _site_at(app, path):
    """The site at the physical ``path`` in ``app``, or ``None``."""
    found = app.unrestrictedTraverse(tuple(path), None)
    if (found is None or not ISiteRoot.providedBy(found)
            or tuple(found.getPhysicalPath()) != tuple(path)):  # not one acquired
        return None
    return found


def uninstall(site, connection):
    """Remove the engine schedules saved in ``site`` (its registry record
    goes with the add-on's other settings); return their names.  Their
    queued jobs stay, as every job does."""
    return _remove_all(tuple(site.getPhysicalPath()), connection, "with the add-on from")


def site_moving(site, event):
    """Subscriber: the schedules saved in a site go with it.

    A site deleted (or the folder it is in) takes them along: its registry
    goes with it, so nothing would show or stop them any more; their
    queued jobs stay, as every job does.  A site renamed or moved keeps
    them under its new path, with their state and their user (one of the
    site's own users is looked up at its new place).  A copy of a site has
    the declarations but runs nothing until they are saved in it, as for
    any record changed by other means than saving.  Done before the move,
    while the old path is still there, in its transaction."""
    if event.oldParent is None or event.oldParent._p_jar is None:
        return  # being added, or never stored
    old_path = tuple(site.getPhysicalPath())
    if event.newParent is None:
        _remove_all(old_path, event.oldParent._p_jar, "with the site")
        return
    found, names = _installed(old_path, event.oldParent._p_jar)
    below_moved = old_path[len(event.object.getPhysicalPath()):]
    new_path = (*event.newParent.getPhysicalPath(), event.newName, *below_moved)
    for name in names:
        schedule = found[name].schedule
        factory = schedule.job_factory
        user_folder = factory.user_folder_path
        if user_folder is not None and tuple(user_folder[:len(old_path)]) == old_path:
            user_folder = (*new_path, *user_folder[len(old_path):])
        moved = dataclasses.replace(
            schedule, name=engine_name(new_path, declared_name(name)),
            job_factory=dataclasses.replace(factory, site_path=new_path,
                                            user_folder_path=user_folder))
        found.rename(name, moved)
        logger.info("schedule %r moves with its site to %s", name, "/".join(new_path))


def delete(site, queues, name):
    """Delete the schedule ``name`` saved in ``site`` (its queued jobs stay)."""
    check_may_edit(site)
    declarations = saved(site)
    if name not in declarations:
        raise LookupError(f"there is no schedule {name!r}")
    del declarations[name]
    _store(site, declarations)
    site_path = tuple(site.getPhysicalPath())
    found = schedules.find(queues._p_jar)
    if found is not None and engine_name(site_path, name) in found:
        found.remove(engine_name(site_path, name))
    logger.info("%s deleted schedule %r in %s",
                getSecurityManager().getUser().getId(), name, "/".join(site_path))
