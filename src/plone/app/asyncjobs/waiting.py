"""Wait for jobs in Plone code and tests: commit, then poll until done.

Unlike :mod:`plone.app.asyncjobs.testing`, this module needs nothing but
the add-on itself (no ``plone.app.testing``), so job code, scripts
(``bin/instance run``) and add-on tests of a plain buildout can import it::

    from plone.app.asyncjobs.waiting import wait_for_all_jobs
    from plone.app.asyncjobs.waiting import wait_for_result

Both commit the current transaction first, so that a worker sees the jobs
(plone.app.async's ``utils.wait_for_all_jobs`` did the same).  The engine's
:func:`plone.app.asyncjobs.engine.testing.wait_for_result` only polls.
"""
import time

import transaction

from plone.app.asyncjobs import api
from plone.app.asyncjobs.engine.failure import is_failure
from plone.app.asyncjobs.engine.failure import traceback_text
from plone.app.asyncjobs.engine.status import COMPLETED
from plone.app.asyncjobs.engine.testing import waiting


def _commit(job=None):
    jar = getattr(job, "_p_jar", None)
    (jar.transaction_manager if jar is not None else transaction.manager).commit()


def wait_for_result(job, seconds=10, commit=True):
    """Commit (unless ``commit`` is false), wait until ``job`` is completed,
    return its result (a failure if it failed)."""
    if commit:
        _commit(job)
    if job._p_jar is None:
        raise AssertionError(
            f"{job!r} is not in the database: was the transaction that "
            "queued it aborted?"
        )
    return waiting.wait_for_result(job, seconds)


def wait_for_all_jobs(seconds=10, assert_successful=True, context=None, commit=True):
    """Commit, then wait until every job queued so far has completed.

    "Every job" is those pending in any queue or held by a worker, looked
    for again once they have completed, until no new one turns up: jobs
    they queued meanwhile (the inner jobs of a composite, a service job
    queued after another one, see :mod:`.service.ordering`) are waited
    for too.  The queues are those of ``context``'s database (default: the
    current site's).  With ``assert_successful``, a failed job raises
    ``AssertionError`` with its traceback.  Returns the jobs.
    """
    if commit:
        transaction.commit()
    deadline = time.monotonic() + seconds
    jobs = []
    while True:
        transaction.begin()
        known = {job._p_oid for job in jobs}
        new = [job for job in _all_jobs(api.get_queues(context)) if job._p_oid not in known]
        if not new:
            break
        jobs += new
        waiting.wait_until(
            lambda: all(job.status == COMPLETED for job in jobs),
            max(deadline - time.monotonic(), 0), sync=transaction.begin,
            describe=lambda: "waiting for " + ", ".join(
                f"{job!r} ({job.status})" for job in jobs if job.status != COMPLETED),
        )
    if assert_successful:
        failed = [job for job in jobs if is_failure(job.result)]
        if failed:
            raise AssertionError("\n\n".join(
                f"{job!r} failed:\n{traceback_text(job.result)}" for job in failed))
    return jobs


def _all_jobs(queues):
    jobs = []
    for queue in queues.values():
        jobs.extend(queue)
        for record in queue.dispatchers.values():
            for agent in record.values():
                jobs.extend(agent)
    return jobs
