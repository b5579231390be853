"""Exceptions raised by the engine or stored as job failures."""
import builtins


class BadStatusError(Exception):
    """The job's status does not allow the requested operation."""


class AbortedError(Exception):
    """The job was interrupted (its worker died) and its policy gave up."""


class OutcomeUnknownError(AbortedError):
    """The job was started, and will not run again, but whether it ran to
    the end and whether its changes were committed is not known: its
    worker was found dead (it may have been only paused or cut off), or
    the connection broke while its outcome was being committed."""


class CancelledError(Exception):
    """Someone cancelled the job before it started, or asked it to stop
    while it ran and it did (see :mod:`.cancel`)."""


class JobTimeoutError(Exception):
    """The job ran longer than its time limit (see :mod:`.timeouts`).

    Unlike a :class:`CancelledError`, it is an ordinary failure: the job's
    retry policy decides whether the job runs again."""


class AttemptAbandoned(BaseException):
    """Raised by every commit a worker thread tries after its dispatcher
    abandoned the attempt it runs: it overran its time limit and its
    grace period (see :mod:`.timeouts`), or the dispatcher's lease lapsed
    (see :meth:`.workers.WorkerThread.lapsed`).

    Derived from ``BaseException`` so that no ``except Exception`` of a job
    or of the engine retries the commit or stores it as a failure: the
    thread unwinds and ends.  Never stored."""


class AttemptInterrupted(AttemptAbandoned):
    """Raised inside the job's code of a worker thread whose attempt the
    dispatcher abandoned at the job's time limit (see :mod:`.timeouts`), so
    that a job which neither returns nor commits still unwinds and its
    thread ends.  Like ``KeyboardInterrupt``, it may surface in any Python
    code the job runs; a job blocked in a call that does not return to
    Python (a socket read without a timeout) sees it only once the call
    returns.  Never stored."""

    def __init__(self, *args):
        super().__init__(*args or (
            "this worker thread's attempt was abandoned at its job's time limit "
            "and grace period: the job is interrupted",))


class DuplicateJobError(ValueError):
    """A job with the same unique key holds it in the queue (``job``)."""

    def __init__(self, message, job):
        super().__init__(message)
        self.job = job


class TimeoutError(builtins.TimeoutError):
    """The job did not start before its ``begin_by`` deadline."""


class ReassignedError(Exception):
    """Another worker now owns the job; this worker must abandon it."""


class NotInJobError(LookupError):
    """A job-local helper was called outside a job run by a dispatcher."""


class DispatcherError(Exception):
    """The dispatcher cannot do what was asked (for example, start twice)."""
