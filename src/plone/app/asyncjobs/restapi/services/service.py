"""The ``@asyncjobs`` service: one class for every method and endpoint.

plone.rest finds the service by its name and the request's method; the
path segments after ``@asyncjobs`` are collected by
:meth:`AsyncJobsService.publishTraverse` and matched against
:data:`.routes.ROUTES`, whose handler computes the reply.  What every
endpoint shares is here:

* the access check, before anything is looked up, so that a refused
  request learns nothing about jobs: 401 for anonymous users, 403 for
  users without ``plone.app.asyncjobs: Manage jobs``;
* the scope (:mod:`...access`): the site's jobs, or with ``?scope=database``
  (repeated in every URL of the reply) every job of the database, for a
  Manager of the Zope root only (403 for anyone else); a job outside the
  scope is not there (404).  Database-wide actions (purge, pause, resume,
  resize) answer 403 to those who may not do them, and a retry that would
  run with roles the user does not have answers 403 too;
* errors as ``{"error": {"type", "message"}}`` (plus ``"field"`` for a
  bad parameter) with their status: 400 for a bad parameter or body
  (:class:`~plone.app.asyncjobs.inspection.QueryError`), 404 for an
  unknown endpoint, job, dispatcher or agent (``LookupError``), 405 for an
  endpoint that does not take the method, 409 for an action the job's
  status does not allow (``BadStatusError``), 415 for a POST without a
  JSON body type (matched without regard to case).  A refused request
  changes nothing: its transaction is doomed.  Any other error is logged
  and answers 500 with an error number, never a traceback (plone.rest
  would show it to every holder of ``Manage portal``, Site Administrators
  included); conflicts still reach the publisher, which retries;
* the JSON body, at most :data:`MAX_BODY_BYTES` long and
  :data:`MAX_BODY_DEPTH` deep (400 otherwise), URLs, the queues, and the
  acting user's id.

plone.protect's CSRF check is off for these requests, as for the other
plone.restapi services; a POST must declare ``Content-Type:
application/json``, which a cross-site form cannot send and a cross-site
script cannot send without the site's CORS consent (PATCH and DELETE
always need that consent).
"""
import json
from urllib.parse import quote
from urllib.parse import urlencode

import transaction
from AccessControl import getSecurityManager
from plone import api
from plone.protect.interfaces import IDisableCSRFProtection
from transaction.interfaces import TransientError
from plone.restapi.services import Service
from zope.interface import alsoProvides
from zope.interface import implementer
from zope.publisher.interfaces import IPublishTraverse

from plone.app.asyncjobs import access
from plone.app.asyncjobs.api import get_queues
from plone.app.asyncjobs.engine.exceptions import BadStatusError
from plone.app.asyncjobs.inspection import MAX_JSON_DEPTH
from plone.app.asyncjobs.inspection import QueryError
from plone.app.asyncjobs.inspection import json_depth
from plone.app.asyncjobs.restapi.services import routes


NAME = "@asyncjobs"
MANAGE_JOBS = access.MANAGE_JOBS
JSON = "application/json"
#: The value of the ``scope`` parameter that asks for every site's jobs.
DATABASE_SCOPE = "database"
#: The longest request body read, in bytes.
MAX_BODY_BYTES = 64 * 1024
#: How deeply a request body's arrays and objects may nest (the bodies of
#: this API are flat objects: depth 1); the same limit as a saved
#: schedule's arguments from the control panel's form.
MAX_BODY_DEPTH = MAX_JSON_DEPTH


class Refusal(Exception):
    """An error reply: its HTTP status, a type name and a message."""

    def __init__(self, status, kind, message, field=None, headers=None):
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.field = field
        self.headers = headers or {}

    def as_json(self):
        error = {"type": self.kind, "message": str(self)}
        if self.field is not None:
            error["field"] = self.field
        return {"error": error}


def as_refusal(error):
    """The :class:`Refusal` for an error of :mod:`.inspection`, else ``None``."""
    if isinstance(error, Refusal):
        return error
    if isinstance(error, QueryError):
        return Refusal(400, "BadRequest", str(error), field=error.field)
    # Exactly LookupError, as inspection raises it: a KeyError or IndexError
    # is a bug to report, not a missing job.
    if type(error) is LookupError:
        return Refusal(404, "NotFound", str(error))
    if isinstance(error, BadStatusError):
        return Refusal(409, "Conflict", str(error))
    if isinstance(error, (access.ScopeRefused, access.RunAsRefused)):
        return Refusal(403, "Forbidden", str(error))
    return None


@implementer(IPublishTraverse)
class AsyncJobsService(Service):
    """``@asyncjobs/<segments>``: route the request, reply JSON."""

    def __init__(self, context, request):
        super().__init__(context, request)
        self.segments = []
        self._queues = None
        self._scope = None

    def publishTraverse(self, request, name):
        self.segments.append(name)
        return self

    def check_permission(self):
        """Nothing here: :meth:`reply` checks access, so that a refusal is a
        JSON error like the others.  It requires ``Manage jobs``, not
        plone.restapi's ``Use REST API`` (which plone.restapi's profile
        grants to everyone, and a site without that profile to Managers
        only)."""

    def reply(self):
        alsoProvides(self.request, IDisableCSRFProtection)
        try:
            self._check_access()
            handler, values = self._route()
            self._check_content_type()
            return handler(self, *values)
        except TransientError:
            raise  # the publisher retries the request
        except Exception as error:
            refusal = as_refusal(error) or self._failure()
        transaction.doom()
        response = self.request.response
        response.setStatus(refusal.status)
        for name, value in refusal.headers.items():
            response.setHeader(name, value)
        return refusal.as_json()

    def _failure(self):
        """A 500 for an unexpected error, logged with the number it shows."""
        number = access.log_failure(self.request)
        return Refusal(500, "InternalServerError",
                       f"the server failed to answer; its log has the details under {number}")

    def _check_access(self):
        if api.user.is_anonymous():
            raise Refusal(401, "Unauthorized", "log in to manage jobs")
        if not getSecurityManager().checkPermission(MANAGE_JOBS, self.context):
            raise Refusal(403, "Forbidden", f"managing jobs needs the permission {MANAGE_JOBS!r}")
        self._scope = access.scope_for(self.context, self.database_wide_requested)

    def _route(self):
        found = routes.match(self.segments)
        if not found:
            raise Refusal(404, "NotFound", f"there is no endpoint {self.url(*self.segments)}")
        method = self.request["REQUEST_METHOD"]
        if method not in found:
            allowed = ", ".join(sorted(found))
            raise Refusal(405, "MethodNotAllowed", f"this endpoint takes {allowed}",
                          headers={"Allow": allowed})
        return found[method]

    def _check_content_type(self):
        if self.request["REQUEST_METHOD"] != "POST":
            return
        content_type = (self.request.getHeader("Content-Type") or "").split(";")[0].strip()
        if content_type.lower() != JSON:
            raise Refusal(415, "UnsupportedMediaType",
                          f"send the request with Content-Type: {JSON}")

    # -- for the handlers ------------------------------------------------------------

    @property
    def queues(self):
        """The queues container of the site's database."""
        if self._queues is None:
            self._queues = get_queues(self.context)
        return self._queues

    @property
    def scope(self):
        """The jobs this request may see (set by the access check)."""
        return self._scope

    @property
    def database_wide_requested(self):
        return self.request.form.get("scope") == DATABASE_SCOPE

    def check_manage_workers(self):
        """403 unless the user may do database-wide actions (see
        :func:`...access.may_manage_workers`)."""
        access.check_manage_workers(self.context)

    @property
    def actor(self):
        """The id of the user making the request, for the admin log."""
        return api.user.get_current().getId()

    def url(self, *segments, query=None):
        """The URL of ``@asyncjobs/<segments>``, with the ``query`` parameters."""
        path = "/".join(quote(str(segment), safe="@:") for segment in (NAME, *segments))
        url = f"{self.context.absolute_url()}/{path}"
        if self.database_wide_requested:
            query = {**(query or {}), "scope": DATABASE_SCOPE}
        return f"{url}?{urlencode(query, doseq=True)}" if query else url

    def json_body(self, fields):
        """The request body, a JSON object with no other keys than ``fields``
        (an empty body is ``{}``); ``QueryError`` for anything else."""
        too_long = QueryError("body", f"longer than {MAX_BODY_BYTES} bytes")
        try:
            declared = int(self.request.environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            declared = 0
        if declared > MAX_BODY_BYTES:
            raise too_long
        raw = self.request.get("BODY") or b""
        if len(raw) > MAX_BODY_BYTES:
            raise too_long
        if not raw.strip():
            return {}
        too_deep = QueryError("body", f"nested more than {MAX_BODY_DEPTH} levels deep")
        try:
            data = json.loads(raw)
        except RecursionError:
            raise too_deep from None
        except ValueError:
            raise QueryError("body", "not valid JSON") from None
        if json_depth(data) > MAX_BODY_DEPTH:
            raise too_deep
        if not isinstance(data, dict):
            raise QueryError("body", "must be a JSON object")
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise QueryError(unknown[0], "not a field of this request")
        return data

    def created(self, data):
        """Answer 201 Created for the resource ``data`` (which has an ``@id``)."""
        self.request.response.setStatus(201)
        self.request.response.setHeader("Location", data["@id"])
        return data
