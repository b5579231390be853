"""The ``<asyncjobs:schedule>`` directive (namespace
``http://namespaces.plone.org/asyncjobs``)::

    <asyncjobs:schedule
        name="nightly-report"
        handler="my.addon.jobs.nightly_report"
        site="/Plone"
        cron="0 3 * * *"
        timezone="Europe/Brussels"
        user="reporter"
        />

declares a schedule that calls ``handler(site, *args)`` in the site at
``site``, as ``user`` (of the site's user folder unless ``user_folder``
names another, such as ``/acl_users``; no user: Anonymous).  Give ``cron``
(five fields, or six with seconds) or ``interval`` (seconds), not both.
Other attributes: ``args`` (words passed as strings), ``queue``,
``quota_names``, ``retry_policy``, ``misfire`` (``once``, ``all``,
``skip``), ``misfire_grace`` (seconds), ``enabled``.

Declared schedules are collected in :data:`DECLARED`; :mod:`.install`
stores them in the database when the process starts.
"""
from datetime import timedelta

from zope.configuration.fields import GlobalObject
from zope.configuration.fields import Tokens
from zope.interface import Interface
from zope.schema import Bool
from zope.schema import Choice
from zope.schema import Float
from zope.schema import TextLine

from plone.app.asyncjobs.engine import schedules
from plone.app.asyncjobs.engine.triggers import Cron
from plone.app.asyncjobs.engine.triggers import Interval
from plone.app.asyncjobs.schedules.jobs import SiteJobFactory


#: The schedules this process's ZCML declared, by name.
DECLARED = {}


class IScheduleDirective(Interface):
    name = TextLine(title="Name, unique in the database, without '@'", required=True)
    handler = GlobalObject(title="The function, called with the site first", required=True)
    site = TextLine(title="Physical path of the site, such as /Plone", required=True)
    cron = TextLine(title="Cron expression", required=False)
    timezone = TextLine(title="Time zone of the cron expression", required=False,
                        default="UTC")
    interval = Float(title="Seconds between two slots", required=False, min=0.001)
    args = Tokens(title="Arguments (strings)", value_type=TextLine(), required=False)
    queue = TextLine(title="Queue", required=False, default="")
    quota_names = Tokens(title="Quotas", value_type=TextLine(), required=False)
    retry_policy = TextLine(title="Retry policy name", required=False)
    misfire = Choice(title="Misfire policy", values=schedules.MISFIRE_POLICIES,
                     required=False, default=schedules.ONCE)
    misfire_grace = Float(title="Seconds before a slot counts as missed", required=False,
                          min=0.0)
    enabled = Bool(title="Enabled", required=False, default=True)
    user = TextLine(title="User id the job runs as (none: Anonymous)", required=False)
    user_folder = TextLine(title="Physical path of the user's user folder", required=False)


def _path(text):
    return tuple(text.rstrip("/").split("/")) if text.strip("/") else ("",)


def make_schedule(name, handler, site, cron=None, timezone="UTC", interval=None, args=(),
                  queue="", quota_names=(), retry_policy=None, misfire=schedules.ONCE,
                  misfire_grace=None, enabled=True, user=None, user_folder=None,
                  database_name=None):
    """The :class:`~plone.app.asyncjobs.engine.schedules.Schedule` of the
    directive's attributes; ``ValueError`` for a bad combination."""
    if "@" in name:
        # Reserved for the schedules saved in sites (see .saved.engine_name).
        raise ValueError(f"schedule {name!r}: a name may not contain '@'")
    if (cron is None) == (interval is None):
        raise ValueError(f"schedule {name!r}: give either cron or interval")
    trigger = (Cron(cron, timezone or "UTC") if cron is not None
               else Interval(timedelta(seconds=interval)))
    site_path = _path(site)
    folder = None
    if user:
        folder = _path(user_folder) if user_folder else site_path + ("acl_users",)
    options = {}
    if misfire_grace is not None:
        options["misfire_grace"] = timedelta(seconds=misfire_grace)
    return schedules.Schedule(
        name, handler, trigger, args=tuple(args or ()), queue=queue or "",
        quota_names=tuple(quota_names or ()), retry_policy=retry_policy or None,
        misfire=misfire or schedules.ONCE, enabled=enabled,
        job_factory=SiteJobFactory(site_path, user or None, folder, database_name),
        **options)


def schedule(_context, name, handler, site, **attributes):
    """The directive's handler: check it now, collect it at the end."""
    declared = make_schedule(name, handler, site, **attributes)
    _context.action(discriminator=("asyncjobs:schedule", name),
                    callable=DECLARED.__setitem__, args=(name, declared))
