"""The endpoints of ``@asyncjobs``: method, path pattern and handler.

A pattern is a tuple of path segments after ``@asyncjobs``; :data:`VALUE`
stands for any one segment, which is passed to the handler.  A handler
takes the service (see :class:`.service.AsyncJobsService`) and those
values, and returns the JSON reply.
"""
from plone.app.asyncjobs.restapi.services import dispatchers
from plone.app.asyncjobs.restapi.services import jobs
from plone.app.asyncjobs.restapi.services import overview
from plone.app.asyncjobs.restapi.services import purge
from plone.app.asyncjobs.restapi.services import schedules


#: A pattern's placeholder for one path segment.
VALUE = object()

ROUTES = (
    ("GET", (), overview.get_overview),
    ("GET", ("jobs",), jobs.list_jobs),
    ("GET", ("jobs", VALUE), jobs.get_job),
    ("DELETE", ("jobs", VALUE), jobs.delete_job),
    ("POST", ("jobs", VALUE, "retry"), jobs.retry_job),
    ("POST", ("jobs", VALUE, "cancel"), jobs.cancel_job),
    ("POST", ("purge",), purge.purge_jobs),
    ("GET", ("dispatchers",), dispatchers.list_dispatchers),
    ("GET", ("dispatchers", VALUE), dispatchers.get_dispatcher),
    ("POST", ("dispatchers", VALUE, "pause"), dispatchers.pause_dispatcher),
    ("POST", ("dispatchers", VALUE, "resume"), dispatchers.resume_dispatcher),
    ("PATCH", ("dispatchers", VALUE, "queues", VALUE, "agents", VALUE),
     dispatchers.set_agent_size),
    ("GET", ("schedules",), schedules.list_schedules),
    ("POST", ("schedules",), schedules.create_schedule),
    ("GET", ("schedules", VALUE), schedules.get_schedule),
    ("PATCH", ("schedules", VALUE), schedules.change_schedule),
    ("DELETE", ("schedules", VALUE), schedules.delete_schedule),
    ("POST", ("schedules", VALUE, "pause"), schedules.pause_schedule),
    ("POST", ("schedules", VALUE, "resume"), schedules.resume_schedule),
    ("POST", ("schedules", VALUE, "run"), schedules.run_schedule),
)


def match(segments):
    """``{method: (handler, values)}`` for the endpoints at ``segments``."""
    found = {}
    for method, pattern, handler in ROUTES:
        if len(pattern) == len(segments) and all(
                part is VALUE or part == segment for part, segment in zip(pattern, segments)):
            values = [segment for part, segment in zip(pattern, segments) if part is VALUE]
            found[method] = (handler, values)
    return found
