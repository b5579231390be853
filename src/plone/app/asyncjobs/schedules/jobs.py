"""The job of a Plone schedule's slot: in the schedule's site, as its user.

Who a schedule's job runs as is declared with the schedule, never taken
from whoever happens to queue the slot (a worker has no user) or presses
"run now": no declared user means Anonymous.  A schedule declared in ZCML
comes from the file system, as trusted as the code it calls, so it may name
any user; "run now" from the console is allowed only to users who hold
that user's roles (:func:`plone.app.asyncjobs.access.check_run_as`).
"""
import pkgutil
from dataclasses import dataclass

from plone.app.asyncjobs.engine.job import Job
from plone.app.asyncjobs.engine.validation import check_callable
from plone.app.asyncjobs.service.context import ExecutionContext
from plone.app.asyncjobs.service.jobs import ContextJob
from plone.app.asyncjobs.service.jobs import EventCallback


class ScheduledJob(ContextJob):
    """A :class:`ContextJob` whose execution context is given (the
    schedule's site and user) instead of captured from the caller."""

    def __init__(self, func, execution, *args, **kwargs):
        check_callable(func)
        self.func = func
        self.execution = execution
        Job.__init__(self, self._call_in_context, *args, **kwargs)


@dataclass(frozen=True)
class SiteJobFactory:
    """Makes a schedule's job: ``func(site, *args, **kwargs)`` in the site
    at ``site_path``, as ``user_id`` of the user folder at
    ``user_folder_path`` (``None``: Anonymous).  ``database_name`` is the
    main database's (for the queues in a database of their own)."""

    site_path: tuple
    user_id: str | None = None
    user_folder_path: tuple | None = None
    database_name: str | None = None

    def __post_init__(self):
        if not self.site_path or self.site_path[0] != "":
            raise ValueError(f"site must be a physical path such as '/Plone', not {self.site_path!r}")
        if (self.user_id is None) != (self.user_folder_path is None):
            raise ValueError("give both the user and their user folder, or neither")

    def execution(self):
        """The recorded context the job runs in."""
        recorded = ExecutionContext()
        recorded.site_path = recorded.context_path = tuple(self.site_path)
        recorded.user_id = self.user_id
        recorded.user_folder_path = (None if self.user_folder_path is None
                                     else tuple(self.user_folder_path))
        recorded.database_name = self.database_name
        return recorded

    def __call__(self, schedule, slot):
        job = ScheduledJob(pkgutil.resolve_name(schedule.func), self.execution(),
                           *schedule.args, **schedule.kwargs)
        job.add_callback(EventCallback())
        return job
