"""A callback that chooses between a success and a failure callable."""
from persistent import Persistent
from zope.interface import implementer

from plone.app.asyncjobs.engine import failure as failures
from plone.app.asyncjobs.engine.interfaces import ICallbackChooser
from plone.app.asyncjobs.engine.interfaces import IJob
from plone.app.asyncjobs.engine.status import NEW
from plone.app.asyncjobs.engine.validation import check_new_callback


def passthrough(result):
    """Return ``result``: stands in for a side of add_callbacks left empty."""
    return result


@implementer(ICallbackChooser)
class SuccessFailureCallback(Persistent):
    """Placeholder callback that becomes ``success`` or ``failure`` once the
    parent job's result is known (see :meth:`Job.add_callbacks`).

    Callbacks added to the proxy before the choice are moved to the chosen
    job.  ``job`` is the chosen job, ``None`` before the choice.
    """

    parent = None
    job = None
    failure_log_level = None
    retry_policy_factory = None
    _policy_kind = "callback"

    def __init__(self, success=None, failure=None):
        self.success = None if success is None else IJob(success)
        self.failure = None if failure is None else IJob(failure)
        self._callbacks = []

    @property
    def status(self):
        return NEW if self.job is None else self.job.status

    @property
    def result(self):
        return None if self.job is None else self.job.result

    @property
    def callbacks(self):
        return self._callbacks if self.job is None else self.job.callbacks

    def deadline_passed(self, now=None):
        return False

    def add_callback(self, callback, failure_log_level=None, retry_policy_factory=None):
        """Add ``callback`` to the chosen job, now or once chosen; checked
        now, as :meth:`.job.Job.add_callback` checks it."""
        options = {name: value for name, value in (("failure_log_level", failure_log_level),
                                                   ("retry_policy_factory", retry_policy_factory))
                   if value is not None}
        if self.job is not None:
            return self.job.add_callback(callback, **options)
        callback = IJob(callback)
        sides = (self.success, self.failure)
        lineage = (*sides, *(self.parent.job_lineage() if self.parent is not None else ()))
        check_new_callback(callback, lineage, failure_log_level)
        if any(added is callback for added, _ in self._callbacks):
            raise ValueError(f"{callback!r} is a callback of this job already")
        self._callbacks.append((callback, options))
        self._p_changed = True
        return self._callbacks[-1][0]

    #: zc.async's spelling (see :mod:`.compat`).
    addCallback = add_callback

    def choose(self, result):
        """Return the job to run for ``result``, choosing it on first call."""
        if self.job is None:
            side = self.failure if failures.is_failure(result) else self.success
            job = side if side is not None else IJob(passthrough)
            job.parent = self.parent
            job._policy_kind = "callback"
            job.failure_log_level = self.failure_log_level
            if self.retry_policy_factory is not None:
                job.retry_policy_factory = self.retry_policy_factory
            for callback, options in self._callbacks:
                job.add_callback(callback, **options)
            self._callbacks = []
            self.job = job
        return self.job
