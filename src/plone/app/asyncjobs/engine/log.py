"""The engine's two loggers.

``events`` receives what an operator must see: life-cycle changes of
dispatchers and agents, job failures (with tracebacks, at the job's
``failure_log_level``), recoveries of dead workers.  ``trace`` receives the
detail that helps when debugging: each job start and end, retry decisions,
polls that changed something.
"""
import logging


events = logging.getLogger("plone.app.asyncjobs.events")
trace = logging.getLogger("plone.app.asyncjobs.trace")
