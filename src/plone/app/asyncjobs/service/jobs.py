"""Jobs that run in the Plone site, as the user, where they were queued.

:class:`ContextJob` is an engine job whose :meth:`set_up` restores the
:class:`~.context.ExecutionContext` recorded when it was created, and whose
call is ``func(context, *args, **kwargs)``.  Its :meth:`tear_down` undoes
the set-up after the attempt was committed or aborted, so code run at
commit time (catalog indexing, event subscribers) still sees the site, the
user and the request.

:class:`EventCallback` is the callback the service adds to each job (to a
batch, not to its parts, as plone.app.async did): it notifies
:class:`~.events.JobSuccess` or :class:`~.events.JobFailure` in the same
restored context, in a transaction of its own.
"""
from persistent import Persistent
from zope.event import notify
from zope.interface import implementer

from plone.app.asyncjobs.engine import failure as failures
from plone.app.asyncjobs.engine.ids import short_repr
from plone.app.asyncjobs.engine.interfaces import IInternalJob
from plone.app.asyncjobs.engine.job import Job
from plone.app.asyncjobs.engine.validation import check_callable
from plone.app.asyncjobs.engine.validation import check_picklable
from plone.app.asyncjobs.interfaces import IContextJob
from plone.app.asyncjobs.service.context import ExecutionContext
from plone.app.asyncjobs.service.events import JobFailure
from plone.app.asyncjobs.service.events import JobSuccess


@implementer(IContextJob)
class ContextJob(Job):
    """Calls ``func(context, *args, **kwargs)`` in the recorded context.

    ``context`` must be a traversable object (content, the site); the job
    stores its path and UID, not the object.  See the module doc.
    """

    #: The context of the running attempt (set by :meth:`set_up`).
    _v_context = None
    #: A retry calls the same function in the same context, as the same user.
    copied_options = Job.copied_options | {"func", "execution"}

    def __init__(self, func, context, *args, **kwargs):
        check_callable(func)
        if isinstance(getattr(func, "__self__", None), Persistent):
            raise ValueError(
                f"{func!r} is a method of a stored object; pass a module-level "
                "function instead: it receives the context as first argument "
                "(a stored object would reach the worker without its "
                "acquisition context)"
            )
        check_picklable(Job(func))
        self.func = func
        self.execution = ExecutionContext.capture(context)
        # The engine calls the job's callable with the job's arguments; the
        # context is only known once set_up has run, so the callable is a
        # method of the job that puts the context first.
        super().__init__(self._call_in_context, *args, **kwargs)

    def same_work(self, other):
        """The same function (every context job calls it through the same
        method of its own)."""
        return isinstance(other, ContextJob) and self.func == other.func

    def _call_in_context(self, *args, **kwargs):
        context = self._v_context
        if context is None:
            raise RuntimeError(f"{self!r} was called without its set-up")
        return self.func(context, *args, **kwargs)

    def set_up(self):
        active = self.execution.enter(self._job_connection())
        self._v_context = active.context
        return active

    def tear_down(self, active):
        self._v_context = None
        if active is None:
            return
        # Started by the outcome just committed or waiting for a group
        # commit, it runs next: it takes over the context, and exits it.
        callback = self.started_callback()
        if isinstance(callback, EventCallback):
            callback.inherit(active)
        else:
            active.exit()

    def _job_connection(self):
        if self._p_jar is None:
            raise RuntimeError(
                f"{self!r} is not stored in a database: put it in a queue"
            )
        return self._p_jar

    def described_arguments(self):
        return [self.execution.describe_context(), *super().described_arguments()]


@implementer(IInternalJob)
class EventCallback(Job):
    """Notifies JobSuccess or JobFailure for the job it is a callback of.

    Runs with the site, the user and the request of that job restored, as
    far as they still exist: its context is ``None`` on the event if it
    cannot be found any more, and with the user gone it runs as Anonymous
    (with the site gone, in none).  Run
    right after its job's attempt, it reuses the job's context (see
    :meth:`inherit`).
    """

    _v_active = None
    #: ``(context, transaction)``: the suspended context of the job, handed
    #: over when its attempt ended (see :meth:`inherit`).
    _v_inherited = None
    #: The :class:`~.context.ExecutionContext` to notify in; ``None``: that
    #: of the job (a batch has none of its own: it gets its first part's).
    execution = None
    copied_options = Job.copied_options | {"execution"}

    def __init__(self, execution=None):
        super().__init__(self._notify)
        self.execution = execution

    def inherit(self, active):
        """Take the suspended :class:`~.context.ActiveContext` of the job
        this callback notifies the outcome of, whose attempt has just
        ended, for this callback to reuse if it starts in the transaction
        open now (the one holding the job's outcome for a group commit, or
        the one that began when that outcome was committed): it then runs
        as part of its job's attempt, with its request.  Restoring the
        context again (a request, the site, the user) took about a sixth
        of a worker's time per Plone job."""
        active.suspend()
        if self._v_inherited is not None:
            self._v_inherited[0].exit()
        self._v_inherited = (active, self._transaction_manager().get())

    def set_up(self):
        inherited, self._v_inherited = self._v_inherited, None
        if inherited is not None:
            active, transaction = inherited
            if transaction is self._transaction_manager().get():
                active.resume()
                self._v_active = active
                return active
            active.exit()
        execution = self.execution or getattr(self.parent, "execution", None)
        if execution is None or self._p_jar is None:
            return None
        self._v_active = execution.enter(self._p_jar, strict=False)
        return self._v_active

    def tear_down(self, active):
        self._v_active = None
        if active is not None:
            active.exit()

    def _notify(self, result):
        active = self._v_active
        context = active.context if active is not None else None
        job = self.parent
        if failures.is_failure(result):
            notify(JobFailure(result, job, context))
        else:
            notify(JobSuccess(result, job, context))
        return None

    def __repr__(self):
        return f"<{short_repr(self)} ``notify the outcome of {self.parent!r}``>"
