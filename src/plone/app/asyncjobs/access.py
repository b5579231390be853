"""Who may see which jobs, and do what to them, in the console and the REST API.

Three rules, applied by :mod:`.inspection`, the control panel and
``@asyncjobs``:

*Jobs belong to their site.*  :func:`job_site` is the physical path of the
site a job was queued in (recorded by :class:`~.service.context.ExecutionContext`);
a :class:`Scope` shows one site's jobs only.  Jobs without a site (queued
through the engine directly, or outside any site) are in the
database-wide scope only, which needs :data:`MANAGE_WORKERS` on the Zope
root: a Manager of the Zope root.

*Database-wide actions need database-wide rights.*  Pausing and resuming
dispatchers, resizing agents and purging histories change what every site
of the database gets: :func:`may_manage_workers` asks for
:data:`MANAGE_WORKERS` on the site, and when the database holds another
Plone site, on the Zope root too.

*Tracebacks reach Managers only.*  A job's traceback is shown to
:func:`may_see_tracebacks`; an unexpected error of the console or the REST
API is logged under a number (:func:`log_failure`) and answered with that
number only, since Plone and plone.rest show tracebacks to every holder of
``Manage portal``, Site Administrators included.

*No escalation through retry.*  A retried job runs again as the user who
queued it.  :func:`check_run_as` allows that only to the same user or to a
user who holds, or could grant themselves on the sharing page, every role
that user has where the job runs and where that user is defined (a
Manager there always may); otherwise it raises :class:`RunAsRefused`.
"""
import logging
import uuid

from AccessControl import getSecurityManager
from Acquisition import aq_base
from Acquisition import aq_inner
from Acquisition import aq_parent
from OFS.Folder import Folder
from plone.app.workflow.interfaces import ISharingPageRole
from Products.CMFPlone.interfaces import IPloneSiteRoot
from zope.component import queryUtility

from plone.app.asyncjobs.engine.interfaces import IJob
from plone.app.asyncjobs.service.context import SYSTEM_USER
from plone.app.asyncjobs.service.exceptions import ExecutionContextError


#: See and act on the jobs of a site (console and REST API).
MANAGE_JOBS = "plone.app.asyncjobs: Manage jobs"
#: Act on what all sites share: dispatchers, agents, histories.
MANAGE_WORKERS = "plone.app.asyncjobs: Manage workers"
#: Roles every user has somewhere; holding them proves nothing.
_UNIVERSAL_ROLES = frozenset(("Anonymous", "Authenticated"))
#: The permission that opens the sharing page at all.
_DELEGATE_ROLES = "Sharing page: Delegate roles"

logger = logging.getLogger("plone.app.asyncjobs.admin")


class RunAsRefused(Exception):
    """The acting user may not make a job run as the user who queued it."""


class ScopeRefused(Exception):
    """The acting user may not see the database-wide scope, or do a
    database-wide action."""


def job_site(job):
    """The physical path (a tuple) of the site ``job`` belongs to, or ``None``.

    A job of the Plone service has its recorded site; a callback belongs to
    its job's site, a composite job to its parts' site if they share one.
    """
    execution = getattr(job, "execution", None)
    if execution is not None:
        return execution.site_path
    parent = job.parent
    if IJob.providedBy(parent):
        return job_site(parent)
    sites = {job_site(part) for part in job.args if IJob.providedBy(part)}
    return sites.pop() if len(sites) == 1 else None


class Scope:
    """The jobs a view shows: those of the site at ``site_path``, or, with
    ``None``, every job of the database."""

    def __init__(self, site_path=None):
        self.site_path = None if site_path is None else tuple(site_path)

    @classmethod
    def of_site(cls, site):
        return cls(site.getPhysicalPath())

    @property
    def database_wide(self):
        return self.site_path is None

    def includes(self, job):
        return self.site_path is None or job_site(job) == self.site_path

    def __repr__(self):
        where = "database" if self.site_path is None else "/".join(self.site_path)
        return f"<Scope {where}>"


#: A scope that shows every job: for code that is not a request's (tests,
#: the monitor) and for a Manager of the Zope root who asked for it.
DATABASE = Scope()


def _root(site):
    return site.getPhysicalRoot()


def is_root_manager(site):
    """Whether the current user has :data:`MANAGE_WORKERS` on the Zope root
    (Zope grants a permission no role map names to Manager)."""
    return bool(getSecurityManager().checkPermission(MANAGE_WORKERS, _root(site)))


def scope_for(site, database_wide=False):
    """The scope a request in ``site`` asked for; :class:`ScopeRefused` if
    it asked for the database-wide one without being a Manager of the root."""
    if not database_wide:
        return Scope.of_site(site)
    if not is_root_manager(site):
        raise ScopeRefused("only a Manager of the Zope root sees the jobs of every site")
    return DATABASE


def plone_sites(container):
    """The Plone sites in ``container`` and in the plain folders below it."""
    for obj in container.objectValues():
        if IPloneSiteRoot.providedBy(obj):
            yield obj
        elif isinstance(aq_base(obj), Folder):
            yield from plone_sites(obj)


def shares_database(site):
    """Whether another Plone site lives in the Zope root of ``site``."""
    own = tuple(site.getPhysicalPath())
    return any(tuple(other.getPhysicalPath()) != own for other in plone_sites(_root(site)))


def may_manage_workers(site):
    """Whether the current user may do database-wide actions from ``site``."""
    checker = getSecurityManager()
    if not checker.checkPermission(MANAGE_WORKERS, site):
        return False
    return not shares_database(site) or is_root_manager(site)


def check_manage_workers(site):
    """:class:`ScopeRefused` unless :func:`may_manage_workers`."""
    if not may_manage_workers(site):
        raise ScopeRefused(
            f"this changes what every site of the database gets: it needs the permission "
            f"{MANAGE_WORKERS!r}, and in a database with several sites on the Zope root")


def log_failure(request):
    """Log the exception being handled with a new error number; return it."""
    number = uuid.uuid4().hex[:12]
    logger.exception("error %s in %s %s", number, request.get("REQUEST_METHOD"),
                     request.get("ACTUAL_URL"))
    return number


def may_see_tracebacks(site):
    """Tracebacks show the server's code and data: Managers only."""
    return bool(getSecurityManager().getUser().allowed(site, ["Manager"]))


# -- running as another user ---------------------------------------------------------


def check_run_as(job, site):
    """Raise :class:`RunAsRefused` unless the current user may make ``job``
    (or a copy of it) run as the user who queued it; see the module doc.

    A copy runs the job's callbacks too, each as the user it recorded
    (integrator code may add a callback recorded for another user), and
    the job it calls if its callable is one: each is checked the same way.
    """
    for part in _parts_run_by(job):
        check_run_in(getattr(part, "execution", None), site)


def _parts_run_by(job):
    """``job``, then the jobs it runs - its callable, if that is a job, and
    its callbacks - and theirs, depth first."""
    yield job
    callable_ = getattr(job, "callable", None)
    if IJob.providedBy(callable_):
        yield from _parts_run_by(callable_)
    for callback in getattr(job, "callbacks", ()):
        yield from _parts_run_by(callback)


def check_run_in(execution, site):
    """Raise :class:`RunAsRefused` unless the current user may make a job
    run in the recorded ``execution`` context (an
    :class:`~.service.context.ExecutionContext`, or ``None``), as its user."""
    if execution is None or execution.user_id is None:
        return  # the engine's own job, or one queued by Anonymous
    app = _root(site)
    actor = getSecurityManager().getUser()
    if execution.user_folder_path == SYSTEM_USER:
        if not actor.allowed(app, ["Manager"]):
            raise RunAsRefused(f"job runs as Zope's system user {execution.user_id!r}; "
                               "only a Manager of the Zope root may run it again")
        return
    if _same_user(actor, execution):
        return
    try:
        original = execution.find_user(app)
        context = execution.find_context(app) or execution.find_site(app) or site
    except ExecutionContextError as error:
        raise RunAsRefused(f"it cannot run again as before: {error}") from None
    for place in _places(context, execution.site_path, original):
        needed = set(original.getRolesInContext(place)) - _UNIVERSAL_ROLES
        if actor.allowed(place, ["Manager"]):
            continue
        missing = sorted(role for role in needed if not _holds(actor, place, role))
        if missing:
            raise RunAsRefused(
                f"it would run as {execution.user_id!r}, with the roles "
                f"{', '.join(missing)} that you do not have at "
                f"{'/'.join(place.getPhysicalPath()) or '/'}")


def _same_user(actor, execution):
    if actor.getId() != execution.user_id:
        return False
    folder = aq_parent(aq_inner(actor))
    return (folder is not None and hasattr(aq_base(folder), "getPhysicalPath")
            and tuple(folder.getPhysicalPath()) == tuple(execution.user_folder_path))


def _places(context, site_path, original):
    """Where the original user's roles count: the job's context, and the
    container of their user folder when that is outside the job's site (a
    user of the Zope root has their roles in every site)."""
    places = [context]
    folder = aq_parent(aq_inner(original))
    home = aq_parent(aq_inner(folder)) if folder is not None else None
    if home is not None:
        home_path = tuple(home.getPhysicalPath())
        if site_path is None or home_path[:len(site_path)] != tuple(site_path):
            places.append(home)
    return places


def _holds(actor, place, role):
    """Whether ``actor`` has ``role`` at ``place``, or could give it to
    themselves there on the sharing page."""
    if actor.allowed(place, [role]):
        return True
    sharing = queryUtility(ISharingPageRole, name=role)
    checker = getSecurityManager()
    return (sharing is not None and bool(checker.checkPermission(_DELEGATE_ROLES, place))
            and bool(checker.checkPermission(sharing.required_permission, place)))
