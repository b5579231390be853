"""Serial and parallel composite jobs.

``serial(a, b, c, postprocess=p)`` returns a job that, when run, queues
``a``; when ``a`` has a result, ``b``; and so on.  ``parallel(...)`` queues
all of them at once.  When every inner job has a result, ``postprocess`` is
queued with the inner *jobs* appended to its arguments (so it can look at
failures as well as results), and its result becomes the composite job's
result.  Without ``postprocess`` the result is the tuple of inner jobs.

The composite job must itself be put in a queue.  Its list of inner jobs is
``composite.args``; appending to it before the last inner job finishes
extends the work.  Each step is safe to repeat, so interrupted composites
resume where they were.

Cancelling a running composite (:func:`.admin.cancel`) cancels its pending
inner jobs and asks its running ones to stop (:func:`cancel_parts`); no
other inner job is queued, and once the started ones have finished the
composite ends with a :class:`~.exceptions.CancelledError` (its
``postprocess`` does not run).
"""
from plone.app.asyncjobs.engine.cancel import cancel_request
from plone.app.asyncjobs.engine.cancel import request_cancel
from plone.app.asyncjobs.engine.interfaces import IJob
from plone.app.asyncjobs.engine.internal import waiting_step
from plone.app.asyncjobs.engine.job import Job
from plone.app.asyncjobs.engine.local import get_job
from plone.app.asyncjobs.engine.status import ACTIVE
from plone.app.asyncjobs.engine.status import CALLBACKS
from plone.app.asyncjobs.engine.status import COMPLETED
from plone.app.asyncjobs.engine.status import NEW
from plone.app.asyncjobs.engine.status import PENDING


def serial(*jobs, postprocess=None):
    """Return a job running ``jobs`` one after the other; see the module doc."""
    return _composite(_start_serial, jobs, postprocess)


def parallel(*jobs, postprocess=None):
    """Return a job running ``jobs`` all at once; see the module doc."""
    return _composite(_start_parallel, jobs, postprocess)


def collect(*jobs):
    """The default postprocess: return the inner jobs as a tuple."""
    return jobs


def _composite(start, jobs, postprocess):
    inner = [IJob(job) for job in jobs]
    final = IJob(postprocess if postprocess is not None else collect)
    for job in (*inner, final):
        # The composite queues them and follows them with a callback: one
        # queued, or part of another job, already would never be followed.
        if job.status != NEW or job.parent is not None:
            raise ValueError(f"{job!r} cannot be part of a composite job: it must be "
                             f"new, not queued nor part of another job ({job.status})")
    return Job(start, *inner, postprocess=final)


def _finished(job):
    return job.status in (CALLBACKS, COMPLETED)


def _unqueued(job):
    return job.status == NEW and job._queue_key is None and job.active_start is None


def _start_serial(*jobs, postprocess):
    composite = get_job()
    postprocess.parent = composite  # the composite waits for it; it is queued later
    _serial_step(composite)
    return postprocess


def _serial_step(composite, result=None):
    if cancel_request(composite) is not None:
        return _end_cancelled(composite)
    for job in composite.args:
        if _unqueued(job):
            composite.queue.put(job)
            job.add_callback(waiting_step(Job(_serial_step, composite)))
            return
        if not _finished(job):
            return
    _queue_postprocess(composite)


def _start_parallel(*jobs, postprocess):
    composite = get_job()
    postprocess.parent = composite
    for job in jobs:
        if _unqueued(job):
            composite.queue.put(job)
            job.add_callback(waiting_step(Job(_parallel_step, composite)))
    _parallel_step(composite)
    return postprocess


def _parallel_step(composite, result=None):
    if cancel_request(composite) is not None:
        return _end_cancelled(composite)
    if all(_finished(job) for job in composite.args):
        _queue_postprocess(composite)


def is_composite(job):
    """Whether ``job`` is a serial or parallel composite job."""
    return job.callable in (_start_serial, _start_parallel)


def cancel_parts(composite, reason):
    """Cancel the pending inner jobs of ``composite`` and ask its running
    ones to stop, for the composite's own cancel request (see the module
    doc); its postprocess too, once queued (the composite then ends with
    the postprocess's CancelledError); commits nothing."""
    for job in (*composite.args, composite.kwargs["postprocess"]):
        if job.status == PENDING:
            job.cancel(reason)
        elif job.status == ACTIVE:
            request_cancel(job, reason)


def _end_cancelled(composite):
    """Once no inner job is under way, end ``composite`` with the
    CancelledError of its cancel request, through its postprocess, which
    it waits for: queued, then cancelled at once, so that it never runs."""
    if any(not _unqueued(job) and not _finished(job) for job in composite.args):
        return  # the last one to finish ends it
    postprocess = composite.kwargs["postprocess"]
    if _unqueued(postprocess):
        composite.queue.put(postprocess)
        postprocess.cancel(cancel_request(composite)[1])


def _queue_postprocess(composite):
    postprocess = composite.kwargs["postprocess"]
    if _unqueued(postprocess):
        postprocess.args.extend(composite.args)
        composite.queue.put(postprocess)
