"""Helpers for tests of code that uses the engine.

The waiting helpers are importable from here directly, as
``zc.async.testing.wait_for_result`` was::

    from plone.app.asyncjobs.engine.testing import wait_for_result

They only poll (after re-synchronising the job's connection): commit the
transaction that queued the job first.  In Plone,
:mod:`plone.app.asyncjobs.waiting` has versions that commit for you.
"""
from plone.app.asyncjobs.engine.testing.waiting import wait_for_annotation
from plone.app.asyncjobs.engine.testing.waiting import wait_for_result
from plone.app.asyncjobs.engine.testing.waiting import wait_for_start
from plone.app.asyncjobs.engine.testing.waiting import wait_until


__all__ = ["wait_for_annotation", "wait_for_result", "wait_for_start", "wait_until"]
