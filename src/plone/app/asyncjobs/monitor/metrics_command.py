"""The ``metrics`` monitor command: this process's Prometheus metrics.

Unlike the other commands it answers in the Prometheus text format, not
JSON: the same text a worker's metrics endpoint serves (see
:mod:`plone.app.asyncjobs.engine.metrics` and ``docs/metrics.rst``), for
a look without an HTTP endpoint, or for a scraper that can only reach the
monitor port.
"""

from zope.interface import provider

from plone.app.asyncjobs.engine.metrics import exposition

from .interfaces import IMonitorPlugin


@provider(IMonitorPlugin)
def metrics(connection):
    """Show this process's job metrics, in the Prometheus text format.

    Counters and histograms of the jobs this process's dispatchers ran,
    by queue and callable; their liveness and agents; the jobs of their
    queues by state (read from the database); claim and commit conflicts.
    A process without a dispatcher shows its commit conflicts only.  The
    metrics are listed in the documentation (docs/metrics.rst).
    """
    connection.write(exposition())
