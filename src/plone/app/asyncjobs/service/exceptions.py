"""Why a job could not be started in its context.

Each is stored as the job's failure (the job's retry policy treats it as a
final error), so the worker keeps running.
"""


class ExecutionContextError(LookupError):
    """The place a job was queued from cannot be restored in the worker."""


class SiteNotFoundError(ExecutionContextError):
    """The site the job was queued in does not exist any more."""


class UserNotFoundError(ExecutionContextError):
    """The user who queued the job does not exist any more."""


class ContextNotFoundError(ExecutionContextError):
    """The job's context was deleted: neither its path nor its UID finds it."""
