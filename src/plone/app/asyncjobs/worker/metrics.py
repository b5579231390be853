"""A worker's metrics endpoint: Prometheus text over HTTP.

Configured with ``metrics-port`` (and ``metrics-host``, 127.0.0.1 by
default) in ``<product-config plone.app.asyncjobs>`` (see :mod:`.config`);
the runtime (:mod:`.runtime`) starts it with the worker's dispatcher and
stops it with it.  ``GET /metrics`` answers the text of
:func:`plone.app.asyncjobs.engine.metrics.exposition` (this process's
registry; gzip if the client asks); any other path answers 404.

The endpoint has no authentication: it tells callable names and counts,
never job arguments or results, and binds to loopback unless configured
otherwise.  Served by ``twisted.web`` on the worker's private reactor,
each request rendered in the reactor's thread pool: a scrape reads the
queue depths from the database, which must not hold up the reactor thread
(the dispatcher's polls and pickups run there).
"""
import errno
import logging

from prometheus_client.exposition import make_wsgi_app
from twisted.internet.error import CannotListenError
from twisted.web.resource import Resource
from twisted.web.server import Site
from twisted.web.wsgi import WSGIResource

from plone.app.asyncjobs.engine.metrics import process_registry
from plone.app.asyncjobs.monitor.server import _is_loopback


logger = logging.getLogger("plone.app.asyncjobs")

#: The path Prometheus scrapes (its default ``metrics_path``).
PATH = b"metrics"


def start_metrics_server(reactor, host, port, registry=None):
    """Serve ``registry`` (default: this process's) at ``http://host:port/metrics``
    with ``reactor``; call in the reactor's thread or before it runs.

    Returns the listening port (``IListeningPort``; port 0 asks for a free
    one: see its ``getHost()``), or ``None`` if the address is in use (logged
    as an error: the worker runs on without metrics).  Other failures to
    listen raise ``CannotListenError``.
    """
    root = Resource()
    root.putChild(PATH, WSGIResource(reactor, reactor.getThreadPool(),
                                     make_wsgi_app(registry or process_registry())))
    site = Site(root, reactor=reactor)
    site.noisy = False
    try:
        listening = reactor.listenTCP(port, site, interface=host)
    except CannotListenError as error:
        if getattr(error.socketError, "errno", None) != errno.EADDRINUSE:
            raise
        logger.error("metrics endpoint not started: %s:%s is already in use", host, port)
        return None
    bound = listening.getHost()
    if not _is_loopback(bound.host):
        logger.warning("metrics endpoint listens on %s:%s, which other hosts can reach; it "
                       "has no authentication, so make sure a firewall blocks the port",
                       bound.host, bound.port)
    logger.info("metrics endpoint listening on http://%s:%s/metrics", bound.host, bound.port)
    return listening


def stop_metrics_server(listening):
    """Stop serving; returns a Deferred that fires once the socket is closed."""
    return listening.stopListening()
