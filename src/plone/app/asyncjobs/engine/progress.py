"""Progress reports of running jobs.

A job reports how far it got with :func:`report_progress`; the report is a
live annotation (see :mod:`~plone.app.asyncjobs.engine.local`), committed at
once in a connection of its own, so monitors and the control panel see it
while the job's own transaction is still open.  :func:`progress_of` reads
the last report of any job.
"""
from dataclasses import dataclass

from plone.app.asyncjobs.engine.local import set_live_annotation
from plone.app.asyncjobs.engine.naming import cut
from plone.app.asyncjobs.engine.validation import is_finite_number


#: The annotation key under which a job's last report is stored.
PROGRESS_KEY = "progress"
#: The longest message kept (consoles poll reports every few seconds).
MESSAGE_LIMIT = 1000


@dataclass(frozen=True)
class Progress:
    """``done`` units of ``total`` (``None`` if unknown), and a message."""

    done: float
    total: float | None = None
    message: str = ""

    @property
    def fraction(self):
        """``done / total`` between 0 and 1, or ``None`` without a total."""
        if not self.total:
            return None
        return min(max(self.done / self.total, 0.0), 1.0)

    def as_dict(self):
        return {"done": self.done, "total": self.total, "message": self.message,
                "fraction": self.fraction}


def report_progress(done, total=None, message="", job=None):
    """Publish that the current job (or ``job``) has done ``done`` of ``total``.

    Raises ``ValueError`` for a ``done`` that is not a finite number >= 0 or
    a ``total`` that is not a finite number > 0 (JSON, which the console
    and REST serve progress as, has no NaN or infinity), and
    ``NotInJobError`` outside a job when no ``job`` is given.
    """
    if not is_finite_number(done) or done < 0:
        raise ValueError(f"done must be a finite number >= 0, not {done!r}")
    if total is not None and (not is_finite_number(total) or total <= 0):
        raise ValueError(f"total must be a finite number > 0 or None, not {total!r}")
    set_live_annotation(PROGRESS_KEY, (done, total, cut(str(message), MESSAGE_LIMIT)),
                        job=job)


def progress_of(job):
    """The last :class:`Progress` ``job`` reported, or ``None``; a number
    stored under :data:`PROGRESS_KEY` (zc.async's
    ``setLiveAnnotation("progress", 0.5)``) is that fraction done, and any
    other value there is no report.

    Reads what the caller's connection sees: sync (begin a transaction) to
    see newer reports.
    """
    report = job.get_annotation(PROGRESS_KEY)
    if is_finite_number(report):
        # zc.async's idiom: setLiveAnnotation("progress", fraction)
        return Progress(report, 1.0)
    if not (isinstance(report, tuple) and 1 <= len(report) <= 3
            and is_finite_number(report[0])
            and (len(report) == 1 or report[1] is None or is_finite_number(report[1]))):
        return None  # nothing this module wrote, nor zc.async's fraction
    return Progress(*report)
