"""The Zope-free job engine: durable jobs queued in ZODB and run by workers.

This subpackage never imports Zope2, ``Products`` or ``plone``; a test
enforces it.  The names most code needs are importable from here::

    from plone.app.asyncjobs.engine import Job, serial, parallel
"""
from plone.app.asyncjobs.engine.composite import parallel
from plone.app.asyncjobs.engine.composite import serial
from plone.app.asyncjobs.engine.job import Job


__all__ = ["Job", "parallel", "serial"]
