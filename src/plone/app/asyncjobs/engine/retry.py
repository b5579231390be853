"""Retry policies: what happens when a job fails, cannot commit, or is interrupted.

A job gets its policy from its ``retry_policy_factory``:

* ``None`` - the process default (:data:`defaults` ``["job"]`` for jobs,
  ``["callback"]`` for callbacks), changeable with :func:`set_default`;
* a string - a policy registered under that name with :func:`register`;
* any other callable - called with the job; it returns the policy.

A ``functools.partial`` of a policy class whose settings can be checked
(a ``check_settings`` static method, as :class:`DelayedRetry` has) is
checked where it is given (:func:`check_factory`), not at the job's first
failure in a worker.

The policy is created once per job and stored with it, with a ``data``
mapping that survives retries (interruption counts, first start time).

Each decision method returns ``True`` (run again now, in the same worker),
``False`` (give up: the failure becomes the result), or a ``datetime`` /
``timedelta`` (put the job back in its queue to run at or after that time).
A job that raised :class:`~.exceptions.CancelledError` (it was asked to
stop: see :mod:`.cancel`) is not rerun, and its policy is not asked.
"""
import functools
import random
import time
from datetime import timedelta

from persistent import Persistent
from persistent.mapping import PersistentMapping
from ZODB.POSException import TransactionError
from zope.interface import implementer

from plone.app.asyncjobs.engine.interfaces import IRetryPolicy
from plone.app.asyncjobs.engine.log import trace
from plone.app.asyncjobs.engine.transactions import DISCONNECTED
from plone.app.asyncjobs.engine.transactions import backoff
from plone.app.asyncjobs.engine.validation import is_finite_number
from plone.app.asyncjobs.engine.validation import is_number


@implementer(IRetryPolicy)
class NeverRetry(Persistent):
    """Give up at once, whatever happened.

    For work with effects outside the database (sending mail, calling a web
    service), where running twice is worse than not finishing.
    """

    #: How many times a job whose worker died runs again (``None``: always).
    #: Outcomes of jobs that never run again are not left for a group
    #: commit (see :mod:`.groupcommit`).
    max_interruptions = 0

    def __init__(self, job):
        self.job = job
        self.data = PersistentMapping()
        # Policies are created at a job's first error or interruption,
        # during its first attempt: that attempt's start is the first one.
        first_active = getattr(job, "active_start", None)
        if first_active is not None:
            self.data["first_active"] = first_active

    def job_error(self, failure, data_cache):
        return False

    def commit_error(self, failure, data_cache):
        return False

    def interrupted(self):
        return False

    def update_data(self, data_cache):
        pass


class RetryCommonFourTimes(NeverRetry):
    """The default policy for jobs.

    * a lost connection to the database server (ZEO, or PostgreSQL under
      RelStorage) is retried forever, pausing 5 s,
      then 5 s longer each time, at most 60 s;
    * a conflict (any ``TransactionError``) is retried until the job has
      been attempted ``transaction_error_limit`` (5) times in this run;
    * an interruption (the worker died while running the job) puts the job
      back at the head of its queue, up to ``max_interruptions`` (9) times;
    * any other error is final.
    """

    transaction_error_limit = 5
    max_interruptions = 9
    log_every = 5

    def job_error(self, failure, data_cache):
        return self._decide(failure, data_cache)

    def commit_error(self, failure, data_cache):
        return self._decide(failure, data_cache)

    def _decide(self, failure, data_cache):
        if DISCONNECTED and failure.check(*DISCONNECTED):
            count = self._count(data_cache, "zeo_disconnected", failure)
            time.sleep(backoff(count))
            return True
        if failure.check(TransactionError):
            count = self._count(data_cache, "transaction_error", failure)
            limit = self.transaction_error_limit
            if limit is not None and count >= limit:
                trace.warning("%r: giving up after %d conflicts", self.job, count)
                return False
            return True
        return self._other_error(failure, data_cache)

    def _other_error(self, failure, data_cache):
        return False

    def _count(self, data_cache, key, failure):
        count = data_cache[key] = data_cache.get(key, 0) + 1
        data_cache["last_" + key] = failure
        if count == 1 or count % self.log_every == 0:
            trace.warning(
                "%r: retrying after %s (%d so far)", self.job,
                failure.getErrorMessage() or failure.type.__name__, count,
            )
        return count

    def interrupted(self):
        count = self.data.get("interruptions", 0) + 1
        self.data["interruptions"] = count
        if self.max_interruptions is not None and count > self.max_interruptions:
            return False
        trace.info("%r: interrupted (%d); running it again", self.job, count)
        return True

    def update_data(self, data_cache):
        if "first_active" not in self.data and self.job.active_start is not None:
            self.data["first_active"] = self.job.active_start
        for key in ("zeo_disconnected", "transaction_error"):
            if key in data_cache:
                self.data[key] = self.data.get(key, 0) + data_cache[key]


class RetryCommonForever(RetryCommonFourTimes):
    """The default policy for callbacks: bookkeeping that must get done.

    Like :class:`RetryCommonFourTimes`, but conflicts and interruptions are
    retried without limit, and a commit that fails for any other reason is
    retried forever too, pausing 0 s, then 1 s longer each time, at most 60 s.
    Errors raised by the callable itself are still final.
    """

    transaction_error_limit = None
    max_interruptions = None

    def commit_error(self, failure, data_cache):
        decision = self._decide(failure, data_cache)
        if decision:
            return decision
        count = self._count(data_cache, "other", failure)
        time.sleep(backoff(count, initial=0, increment=1))
        return True


#: The longest wait :class:`DelayedRetry` accepts: ten years, in seconds.
MAX_DELAY = 10 * 365 * 24 * 3600


class DelayedRetry(RetryCommonFourTimes):
    """Retry any error later, waiting exponentially longer each time.

    The n-th retry waits ``base_delay * factor ** (n - 1)`` seconds, at most
    ``max_delay``, varied by up to ``jitter`` (a fraction) either way so that
    many failing jobs do not come back at the same instant.  After
    ``max_attempts`` attempts in all the failure is final.  Conflicts and
    interruptions are handled as by :class:`RetryCommonFourTimes`.

    Parameters are keyword arguments, so a job can carry a variant::

        job.retry_policy_factory = functools.partial(DelayedRetry, max_attempts=10)
    """

    def __init__(self, job, max_attempts=5, base_delay=10.0, factor=2.0,
                 max_delay=3600.0, jitter=0.1):
        super().__init__(job)
        self.check_settings(max_attempts, base_delay, factor, max_delay, jitter)
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.factor = factor
        self.max_delay = max_delay
        self.jitter = jitter

    @staticmethod
    def check_settings(max_attempts=5, base_delay=10.0, factor=2.0, max_delay=3600.0,
                       jitter=0.1):
        """Raise unless the settings make a policy: ``max_attempts`` an
        integer of at least 1; ``base_delay`` and ``max_delay`` seconds
        from 0 to :data:`MAX_DELAY`; ``factor`` at least 1; ``jitter``
        from 0 to below 1."""
        if isinstance(max_attempts, bool) or not isinstance(max_attempts, int):
            raise TypeError(f"max_attempts must be an integer, not {max_attempts!r}")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        for name, value in (("base_delay", base_delay), ("max_delay", max_delay)):
            if not 0 <= _finite_number(name, value) <= MAX_DELAY:
                raise ValueError(f"{name} must be from 0 to {MAX_DELAY} seconds, not {value!r}")
        if not _finite_number("factor", factor) >= 1:
            raise ValueError(f"factor must be at least 1, not {factor!r}")
        if not 0 <= _finite_number("jitter", jitter) < 1:
            raise ValueError(f"jitter must be a fraction from 0 to below 1, not {jitter!r}")

    def _other_error(self, failure, data_cache):
        attempts = self.data.get("attempts", 1)
        if attempts >= self.max_attempts:
            trace.warning("%r: giving up after %d attempts", self.job, attempts)
            return False
        self.data["attempts"] = attempts + 1
        return timedelta(seconds=self.delay(attempts))

    def delay(self, retry):
        """Seconds to wait before retry number ``retry`` (1-based)."""
        try:
            grown = self.base_delay * self.factor ** (retry - 1)
        except OverflowError:  # thousands of retries: long past max_delay
            grown = self.max_delay
        delay = min(self.max_delay, grown)
        return delay * (1 + random.uniform(-self.jitter, self.jitter))


def _finite_number(name, value):
    """``value`` if it is a finite number, else raise naming ``name``."""
    if not is_number(value):
        raise TypeError(f"{name} must be a number, not {value!r}")
    if not is_finite_number(value):
        raise ValueError(f"{name} must be a finite number, not {value!r}")
    return value


_registry = {
    "never": NeverRetry,
    "default": RetryCommonFourTimes,
    "forever": RetryCommonForever,
    "delayed": DelayedRetry,
}

#: The factories used when a job does not name one.
defaults = {"job": RetryCommonFourTimes, "callback": RetryCommonForever}


def register(name, factory):
    """Make ``factory`` available as ``retry_policy_factory=name``."""
    if not callable(factory):
        raise TypeError(f"a retry policy factory must be callable, not {factory!r}")
    _registry[name] = factory


def set_default(factory, kind="job"):
    """Use ``factory`` for jobs (``kind="job"``) or callbacks (``"callback"``)
    that do not name a policy; ``None`` restores the built-in default."""
    if kind not in defaults:
        raise ValueError(f"kind must be 'job' or 'callback', not {kind!r}")
    builtin = RetryCommonFourTimes if kind == "job" else RetryCommonForever
    defaults[kind] = factory or builtin


def resolve(factory, kind="job"):
    """Return the callable that creates a policy for the given setting."""
    if factory is None:
        return defaults[kind]
    if isinstance(factory, str):
        try:
            return _registry[factory]
        except KeyError:
            raise ValueError(
                f"unknown retry policy {factory!r}; registered: {sorted(_registry)}"
            ) from None
    if not callable(factory):
        raise TypeError(f"retry_policy_factory must be callable or a name, not {factory!r}")
    return factory


def check_factory(factory, kind="job"):
    """Return what :func:`resolve` does for ``factory``, given where a job
    is made or queued: also check the settings of a ``functools.partial``
    of a class that defines a ``check_settings`` static method of its own
    (a subclass with settings of its own is not checked by its base's),
    which takes the partial's keyword arguments; it is called with the job
    first, so positional arguments would be taken for settings: refused."""
    resolved = resolve(factory, kind)
    if isinstance(factory, functools.partial) and "check_settings" in vars(factory.func):
        if factory.args:
            raise TypeError(f"give the settings of {factory.func.__name__} as keyword "
                            f"arguments: the policy is made with the job first")
        factory.func.check_settings(**factory.keywords)
    return resolved
