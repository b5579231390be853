"""Where a job was queued, recorded then, and restored in the worker.

At queue time :meth:`ExecutionContext.capture` records plain data only
(no persistent objects, so the job's pickle holds no reference into the
content database):

* the physical path of the site (the local component site, else the
  nearest site above the context);
* the physical path and the UID of the context;
* the physical path of the user folder of the queuing user and the user's
  id (nothing for Anonymous; a marker for Zope's system user);
* the request's URL data: its ``SERVER_URL``, its virtual root (the path
  a virtual host maps to the root) and the physical path of the object at
  the virtual root, plus its ``Accept-Language`` header;
* the name of the main database.

In the worker, :meth:`ExecutionContext.enter` takes the Zope application
from the job's own connection (or, with the queues in another database,
from the main database's connection joined to it), builds a request that
produces the same URLs, makes the site the local site, logs the user in,
and finds the context by path, or by UID if it moved.  Changes the job
makes are committed with its result, in the job's transaction.
"""
import logging
import threading
from io import BytesIO
from urllib.parse import unquote
from urllib.parse import urlsplit

from AccessControl.SecurityManagement import getSecurityManager
from AccessControl.SecurityManagement import newSecurityManager
from AccessControl.SecurityManagement import noSecurityManager
from AccessControl.SecurityManagement import setSecurityManager
from AccessControl.users import UnrestrictedUser
from AccessControl.users import system as system_user
from Acquisition import aq_base
from Acquisition import aq_chain
from Acquisition import aq_inner
from Acquisition import aq_parent
from plone.uuid.interfaces import IUUID
from zope.component.hooks import getSite
from zope.component.hooks import setSite
from zope.component.interfaces import ISite
from zope.event import notify
from zope.globalrequest import getRequest
from zope.globalrequest import setRequest
from zope.publisher.browser import setDefaultSkin
from zope.traversing.interfaces import BeforeTraverseEvent
from ZPublisher.BaseRequest import RequestContainer
from ZPublisher.HTTPRequest import HTTPRequest
from ZPublisher.HTTPResponse import HTTPResponse

from plone.app.asyncjobs.service.exceptions import ContextNotFoundError
from plone.app.asyncjobs.service.exceptions import ExecutionContextError
from plone.app.asyncjobs.service.exceptions import SiteNotFoundError
from plone.app.asyncjobs.service.exceptions import UserNotFoundError


logger = logging.getLogger("plone.app.asyncjobs")

#: The key of the Zope application in the main database's root.
APPLICATION_KEY = "Application"

#: ``user_folder_path`` of jobs queued by Zope's system user.
SYSTEM_USER = "system"

#: Where a job queued outside any request believes it is published.
DEFAULT_SERVER_URL = "http://nohost"

#: Request headers (WSGI environ keys) copied into the worker's request.
COPIED_ENVIRON = ("HTTP_ACCEPT_LANGUAGE",)

_DEFAULT_PORTS = {"http": 80, "https": 443}


class ExecutionContext:
    """Plain data recorded when a job is queued; see the module doc."""

    site_path = None
    context_path = None
    context_uid = None
    user_folder_path = None
    user_id = None
    database_name = None
    server_url = DEFAULT_SERVER_URL
    virtual_root = ()
    virtual_root_physical_path = None
    environ = None

    @classmethod
    def capture(cls, context, request=None):
        """Record where ``context`` is and who is working on it now;
        ``ValueError`` for a context that is not stored where its path
        leads, where the worker looks for it."""
        if not hasattr(aq_base(context), "getPhysicalPath"):
            raise TypeError(
                f"the context of a job must be a traversable object with a "
                f"physical path (a content object, the site), not {context!r}"
            )
        recorded = cls()
        recorded.context_path = tuple(context.getPhysicalPath())
        recorded.context_uid = IUUID(context, None)
        recorded._check_findable(context)
        site = _site_of(context)
        if site is not None:
            recorded.site_path = tuple(site.getPhysicalPath())
        jar = main_jar(context) or main_jar(site)
        if jar is not None:
            recorded.database_name = jar.db().database_name
        recorded._capture_user()
        recorded._capture_request(request if request is not None else getRequest())
        return recorded

    def _check_findable(self, context):
        """``ValueError`` unless :meth:`find_context` finds ``context``, as
        the worker will look for it: an object stored nowhere (or not where
        its path says) would fail there with ``ContextNotFoundError``."""
        try:
            root = context.getPhysicalRoot()
        except (AttributeError, TypeError):  # no Zope root above it to acquire that from
            root = None
        if root is not None and _held_up_to(root, context):
            return  # the common case, without the (slow) traversal
        found = None if root is None else self.find_context(root)
        if found is None or aq_base(found) is not aq_base(context):
            raise ValueError(
                f"the job's context {context!r} is not stored at its path "
                f"{'/'.join(self.context_path) or '/'!r}, where the worker looks for "
                "it: store it in its container first"
            )

    def _capture_user(self):
        user = getSecurityManager().getUser()
        user_id = user.getId() if user is not None else None
        if user_id is None:
            return  # Anonymous
        if aq_base(user) is aq_base(system_user):
            self.user_folder_path = SYSTEM_USER
            self.user_id = user_id
            return
        folder = aq_parent(aq_inner(user))
        if folder is None or not hasattr(aq_base(folder), "getPhysicalPath"):
            if isinstance(aq_base(user), UnrestrictedUser):
                raise ValueError(
                    f"cannot queue a job as {user_id!r}, an unrestricted user "
                    "that belongs to no user folder; queue it as a real user"
                )
            raise ValueError(
                f"cannot queue a job as {user_id!r}: the user is not wrapped "
                "in the user folder it comes from"
            )
        self.user_folder_path = tuple(folder.getPhysicalPath())
        self.user_id = user_id

    def _capture_request(self, request):
        if request is None or not hasattr(request, "getVirtualRoot"):
            return
        server_url = request.get("SERVER_URL")
        if server_url:
            self.server_url = server_url
        self.virtual_root = tuple(p for p in request.getVirtualRoot().split("/") if p)
        physical = request.get("VirtualRootPhysicalPath")
        if physical is not None:
            self.virtual_root_physical_path = tuple(physical)
        environ = getattr(request, "environ", None) or {}
        copied = {key: environ[key] for key in COPIED_ENVIRON if key in environ}
        self.environ = copied or None

    # -- in the worker ----------------------------------------------------------

    def main_connection(self, connection):
        """The connection to the main database, from the job's connection."""
        name = self.database_name
        if name is None or connection.db().database_name == name:
            return connection
        return connection.get_connection(name)

    def enter(self, connection, strict=True):
        """Restore the recorded context; return an :class:`ActiveContext`.

        ``connection`` is the job's connection.  Raises a subclass of
        :class:`~.exceptions.ExecutionContextError` when the site, the user
        or the context cannot be found, leaving the thread as it was; not
        ``strict`` (for the callback that notifies a job's outcome, which
        must notify it whatever is gone), what cannot be found is left out
        and logged: no site, Anonymous, no context.
        """
        active = ActiveContext()
        try:
            active.start(self, self.main_connection(connection), strict)
        except BaseException:
            active.exit()
            raise
        return active

    def make_request(self):
        """A request whose URLs are those of the request the job was queued
        in: the environ gives its server URL and its virtual root
        (``SCRIPT_NAME``, as a front server mounting the site there would),
        and the physical path of the object at that root."""
        parts = urlsplit(self.server_url)
        scheme = parts.scheme or "http"
        hostname = parts.hostname or "nohost"
        port = parts.port or _DEFAULT_PORTS.get(scheme, 80)
        environ = {
            "SERVER_URL": self.server_url,
            "SERVER_NAME": hostname,
            "SERVER_PORT": str(port),
            "HTTP_HOST": parts.netloc or hostname,
            "REQUEST_METHOD": "GET",
            "wsgi.url_scheme": scheme,
            # The recorded virtual root is URL-quoted (getVirtualRoot);
            # the request quotes SCRIPT_NAME's parts itself.
            "SCRIPT_NAME": "".join(f"/{unquote(part)}" for part in self.virtual_root),
        }
        if scheme == "https":
            environ["HTTPS"] = "on"
        environ.update(self.environ or {})
        request = HTTPRequest(BytesIO(), environ, HTTPResponse(stdout=BytesIO()))
        if self.virtual_root_physical_path is not None:
            request["VirtualRootPhysicalPath"] = self.virtual_root_physical_path
        # The request took SCRIPT_NAME unquoted into its URL: the URL of the
        # virtual root, until the context is found (ActiveContext.start).
        request["URL"] = request.physicalPathToURL(())
        setDefaultSkin(request)
        return request

    def find_site(self, app):
        if self.site_path is None:
            return None
        site = _traverse(app, self.site_path)
        if site is None:
            raise SiteNotFoundError(
                f"the site {'/'.join(self.site_path)!r} the job was queued in "
                "does not exist any more"
            )
        return site

    def find_user(self, app):
        """The recorded user, wrapped in its user folder; ``None`` for Anonymous."""
        if self.user_id is None:
            return None
        if self.user_folder_path == SYSTEM_USER:
            return system_user
        folder = _traverse(app, self.user_folder_path)
        user = _user_by_id(folder, self.user_id) if folder is not None else None
        if user is None:
            raise UserNotFoundError(
                f"the user {self.user_id!r} of {'/'.join(self.user_folder_path)!r} "
                "who queued the job does not exist any more"
            )
        if aq_parent(user) is None:
            user = user.__of__(folder)
        return user

    def find_context(self, app):
        """The context, by path, else by UID; ``None`` if it is gone."""
        found = _traverse(app, self.context_path)
        if found is not None and (self.context_uid is None
                                  or IUUID(found, None) == self.context_uid):
            return found
        if self.context_uid is not None:
            from plone.app.uuid.utils import uuidToObject

            moved = uuidToObject(self.context_uid, unrestricted=True)
            if moved is not None:
                logger.info(
                    "job context %s moved to %s; found it by its UID",
                    "/".join(self.context_path), "/".join(moved.getPhysicalPath()),
                )
                return moved
        return None

    def describe_context(self):
        path = "/".join(self.context_path or ()) or "/"
        return f"{path} (UID {self.context_uid})" if self.context_uid else path

    def __repr__(self):
        return (
            f"<ExecutionContext {self.describe_context()} in site "
            f"{'/'.join(self.site_path or ()) or '-'} as user "
            f"{self.user_id or 'Anonymous'} at {self.server_url}>"
        )


def _found(find, app, strict):
    """``find(app)``; not ``strict``, ``None`` (logged) for what is gone."""
    try:
        return find(app)
    except ExecutionContextError as error:
        if strict:
            raise
        logger.warning("restoring what remains of a job's context: %s", error)
        return None


class ActiveContext:
    """The restored context of one attempt of a job; :meth:`exit` undoes it.

    :meth:`suspend` gives the thread back its site, request and user of
    before but keeps this context's request open, for :meth:`resume` to
    make it current again (the callback notifying a job's outcome, run
    next in the same transaction, reuses its job's context).
    """

    app = site = user = context = request = None

    def __init__(self):
        self._previous = _thread_state()
        self._exited = False
        self._suspended = False

    def start(self, recorded, connection, strict):
        request = self.request = recorded.make_request()
        setRequest(request)
        app = connection.root()[APPLICATION_KEY]
        self.app = app = app.__of__(RequestContainer(REQUEST=request))
        request["PARENTS"] = [app]
        site = self.site = _found(recorded.find_site, app, strict)
        if site is not None:
            setSite(site)
            request["PARENTS"] = [site, app]
            if hasattr(aq_base(site), "setupCurrentSkin"):
                site.setupCurrentSkin(request)
            notify(BeforeTraverseEvent(site, request))
        user = self.user = _found(recorded.find_user, app, strict)
        self._log_in()
        if user is not None:
            request["AUTHENTICATED_USER"] = user
        context = self.context = recorded.find_context(app)
        if context is None:
            if strict:
                raise ContextNotFoundError(
                    f"the job's context {recorded.describe_context()} was "
                    "deleted: neither its path nor its UID finds it"
                )
        else:
            # As if the context had been published.
            request["URL"] = request["ACTUAL_URL"] = context.absolute_url()

    def _log_in(self):
        if self.user is None:
            noSecurityManager()
        else:
            newSecurityManager(self.request, self.user)

    def suspend(self):
        """Restore the site, request and user of before; keep the request open."""
        if self._exited or self._suspended:
            return
        self._suspended = True
        _restore_thread_state(self._previous)

    def resume(self):
        """Make this suspended context current again in this thread."""
        if self._exited or not self._suspended:
            raise RuntimeError("only a suspended context can be resumed")
        self._suspended = False
        self._previous = _thread_state()
        setRequest(self.request)
        if self.site is not None:
            setSite(self.site)
        self._log_in()

    def exit(self):
        """Close the request and restore the site, request and user of
        before (those of now, if suspended: closing a request clears the
        thread's site)."""
        if self._exited:
            return
        self._exited = True
        after = _thread_state() if self._suspended else self._previous
        try:
            if self.request is not None:
                self.request.close()
        finally:
            _restore_thread_state(after)


def _thread_state():
    """The site, request and security manager of this thread."""
    return getSite(), getRequest(), getSecurityManager()


def _restore_thread_state(state):
    site, request, security_manager = state
    setSecurityManager(security_manager)
    setSite(site)
    setRequest(request)


def _site_of(context):
    """The current local site if ``context`` is in it, else the nearest site
    above ``context`` (``None`` outside any site)."""
    path = tuple(context.getPhysicalPath())
    site = getSite()
    if site is not None and hasattr(aq_base(site), "getPhysicalPath"):
        site_path = tuple(site.getPhysicalPath())
        if path[: len(site_path)] == site_path:
            return site
    for obj in aq_chain(aq_inner(context)):
        if ISite.providedBy(obj) and hasattr(aq_base(obj), "getPhysicalPath"):
            return obj
    return None


def _held_up_to(root, context):
    """Whether each object from ``context`` up to ``root`` is its
    container's item of its id (``_getOb``): what traversal by path
    finds, cheaply."""
    obj = aq_inner(context)
    while aq_base(obj) is not aq_base(root):
        get = getattr(aq_parent(obj), "_getOb", None)
        if get is None or aq_base(get(obj.getId(), None)) is not aq_base(obj):
            return False
        obj = aq_inner(aq_parent(obj))
    return True


def main_jar(obj):
    """The ``_p_jar`` of the outermost object of ``obj``'s acquisition chain
    that has one, or ``None``: for content reached from the Zope
    application, the application's, in the main database, also when the
    content is stored in a mounted database."""
    jar = None
    for candidate in aq_chain(aq_inner(obj)) if obj is not None else ():
        jar = getattr(aq_base(candidate), "_p_jar", None) or jar
    return jar


class _FoundUsers(threading.local):
    """The users this thread looked up in the current transaction of their
    user folder's connection: ``(that transaction, {(folder path, user
    id): user})``."""

    found = (None, None)


_found_users = _FoundUsers()


def _user_by_id(folder, user_id):
    """``folder.getUserById(user_id)``, asked once per transaction and thread.

    The lookup (PAS plugins, properties, groups) was a quarter of a worker's
    CPU time per Plone job, and a job and its callback, and the jobs whose
    outcomes share a group commit, run in one transaction with the same
    user.  One transaction sees one state of the user folder, and a job
    that changes it commits at once, ending that transaction: a user found
    in it is the user any later lookup in it would find.  The user is kept
    unwrapped, and the caller wraps it in the folder it traversed to.
    """
    jar = getattr(folder, "_p_jar", None)
    if jar is None:
        return folder.getUserById(user_id)
    current = jar.transaction_manager.get()
    transaction, users = _found_users.found
    if transaction is not current:
        users = {}
        _found_users.found = (current, users)
    key = (tuple(folder.getPhysicalPath()), user_id)
    if key not in users:
        user = folder.getUserById(user_id)
        users[key] = None if user is None else aq_base(user)
    return users[key]


def _traverse(app, path):
    """The object at the physical ``path``, or ``None`` (never one found
    by acquisition somewhere else)."""
    try:
        found = app.unrestrictedTraverse(path, None)
    except Exception:
        return None
    if found is None:
        return None
    try:
        if tuple(found.getPhysicalPath()) != tuple(path):
            return None
    except AttributeError:
        return None
    return found
