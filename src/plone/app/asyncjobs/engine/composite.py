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
"""
from plone.app.asyncjobs.engine.interfaces import IJob
from plone.app.asyncjobs.engine.internal import waiting_step
from plone.app.asyncjobs.engine.job import Job
from plone.app.asyncjobs.engine.local import get_job
from plone.app.asyncjobs.engine.status import CALLBACKS
from plone.app.asyncjobs.engine.status import COMPLETED
from plone.app.asyncjobs.engine.status import NEW


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
    if all(_finished(job) for job in composite.args):
        _queue_postprocess(composite)


def _queue_postprocess(composite):
    postprocess = composite.kwargs["postprocess"]
    if _unqueued(postprocess):
        postprocess.args.extend(composite.args)
        composite.queue.put(postprocess)
