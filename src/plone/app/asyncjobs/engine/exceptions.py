"""Exceptions raised by the engine or stored as job failures."""
import builtins


class BadStatusError(Exception):
    """The job's status does not allow the requested operation."""


class AbortedError(Exception):
    """The job was interrupted (its worker died) and its policy gave up."""


class CancelledError(Exception):
    """Someone cancelled the job before it started."""


class TimeoutError(builtins.TimeoutError):
    """The job did not start before its ``begin_by`` deadline."""


class ReassignedError(Exception):
    """Another worker now owns the job; this worker must abandon it."""


class NotInJobError(LookupError):
    """A job-local helper was called outside a job run by a dispatcher."""


class DispatcherError(Exception):
    """The dispatcher cannot do what was asked (for example, start twice)."""
