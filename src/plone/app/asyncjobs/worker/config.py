"""Worker settings from zope.conf.

::

    <product-config plone.app.asyncjobs>
        poll-interval 10
        agent-size 3
        default-quota-size 1
        default-timeout 3600
        timeout-grace 10
        shutdown-grace 10
        queues reports mail
        metrics-port 9464
        gc-freeze on
    </product-config>

All keys are optional:

``poll-interval``
    seconds between two looks at the queues (default: the engine's
    ``dispatcher.POLL_INTERVAL``, 10); queued jobs start at once without
    waiting for it (see "Pickup" in the engine documentation): the poll is
    the safety net;
``agent-size``
    how many jobs this worker runs at once per queue (default 3): the size
    of the agent ``main`` it installs in every queue, also applied to an
    existing one;
``default-quota-size``
    the size of the quota named ``default`` that jobs queued through
    ``IAsyncService`` without quota names count against, as with
    plone.app.async.  Not given: a queue without it gets it with size 1
    (when the queue is created, and when a worker starts), so such jobs
    run one at a time across all workers; an existing one keeps its size.
    Given: that size instead; ``0`` removes the quota (no limit).  Workers
    apply it to their queues when they start, instances to the queues
    they create.  See
    :mod:`plone.app.asyncjobs.service.queues`;
``default-timeout``
    seconds a job may run when it was queued without a ``timeout`` of its
    own, the queues' ``default_timeout`` (see "Time limits" in the engine
    documentation); ``0``: no limit.  Not given: queues keep theirs (none
    in a new queue).  Applied like ``default-quota-size``;
``timeout-grace``
    seconds a job past its time limit may run on before it is abandoned,
    the queues' ``timeout_grace`` (default 10).  Applied like
    ``default-quota-size``;
``shutdown-grace``
    seconds running jobs get to finish when the worker stops (default 10);
    jobs still running then are handed back and run again later;
``queues``
    names of queues to create besides the default queue ``''``;
``metrics-port``
    serve this worker's Prometheus metrics at
    ``http://127.0.0.1:PORT/metrics`` while its dispatcher runs (see
    :mod:`.metrics` and ``docs/metrics.rst``); not given: no endpoint;
``metrics-host``
    the interface the metrics endpoint binds to instead of 127.0.0.1 (it
    has no authentication: keep it off public networks); only with
    ``metrics-port``;
``gc-freeze``
    ``on`` (the default) or ``off``: whether the worker exempts the objects
    of its start-up from the garbage collector's later full collections,
    which stop every thread while they go over them (see
    :mod:`plone.app.asyncjobs.engine.gcfreeze`).

The monitor server is configured apart, in ``<product-config
zc.z3monitor>`` (``port`` or ``bind``), as with plone.app.async.
"""
import math
from dataclasses import dataclass

from plone.app.asyncjobs.engine.agent import MAX_SIZE
from plone.app.asyncjobs.engine.dispatcher import POLL_INTERVAL


PRODUCT_CONFIG = "plone.app.asyncjobs"
MONITOR_PRODUCT_CONFIG = "zc.z3monitor"


@dataclass
class WorkerSettings:
    poll_interval: float = POLL_INTERVAL
    agent_size: int = 3
    agent_size_configured: bool = False
    default_quota_size: int = None
    #: ``None``: not configured; ``0``: no limit.
    default_timeout: float = None
    timeout_grace: float = None
    shutdown_grace: float = 10.0
    queue_names: tuple = ("",)
    metrics_host: str = "127.0.0.1"
    metrics_port: int = None
    gc_freeze: bool = True

    @classmethod
    def from_section(cls, section):
        """Parse a product-config section (a mapping of ``str`` values)."""
        section = dict(section or {})
        settings = cls()
        known = {"poll-interval", "agent-size", "default-quota-size", "default-timeout",
                 "timeout-grace", "shutdown-grace", "queues", "metrics-port", "metrics-host",
                 "gc-freeze"}
        unknown = sorted(set(section) - known)
        if unknown:
            raise ValueError(
                f"<product-config {PRODUCT_CONFIG}>: unknown keys {unknown}; "
                f"known: {sorted(known)}"
            )
        if "poll-interval" in section:
            settings.poll_interval = _number(section, "poll-interval", float, 0.001)
        if "agent-size" in section:
            settings.agent_size = _number(section, "agent-size", int, 0, MAX_SIZE)
            settings.agent_size_configured = True
        if "default-quota-size" in section:
            settings.default_quota_size = _number(section, "default-quota-size", int, 0)
        if "default-timeout" in section:
            settings.default_timeout = _number(section, "default-timeout", float, 0)
        if "timeout-grace" in section:
            settings.timeout_grace = _number(section, "timeout-grace", float, 0)
        if "shutdown-grace" in section:
            settings.shutdown_grace = _number(section, "shutdown-grace", float, 0)
        if "queues" in section:
            names = section["queues"].split()
            settings.queue_names = ("",) + tuple(n for n in names if n)
        if "metrics-port" in section:
            settings.metrics_port = _number(section, "metrics-port", int, 1)
            if settings.metrics_port > 65535:
                raise ValueError(f"<product-config {PRODUCT_CONFIG}>: metrics-port must be "
                                 f"at most 65535, got {section['metrics-port']!r}")
        if "metrics-host" in section:
            if "metrics-port" not in section:
                raise ValueError(f"<product-config {PRODUCT_CONFIG}>: metrics-host needs "
                                 f"metrics-port")
            settings.metrics_host = section["metrics-host"].strip()
        if "gc-freeze" in section:
            value = section["gc-freeze"].strip().lower()
            if value not in ("on", "off"):
                raise ValueError(f"<product-config {PRODUCT_CONFIG}>: gc-freeze must be "
                                 f"on or off, got {section['gc-freeze']!r}")
            settings.gc_freeze = value == "on"
        return settings


def _number(section, key, kind, minimum, maximum=None):
    text = section[key]
    try:
        value = kind(str(text).strip())
    except ValueError:
        raise ValueError(
            f"<product-config {PRODUCT_CONFIG}>: {key} must be a "
            f"{'whole ' if kind is int else ''}number, got {text!r}"
        ) from None
    if not math.isfinite(value):
        raise ValueError(
            f"<product-config {PRODUCT_CONFIG}>: {key} must be a finite number, got {text!r}"
        )
    if maximum is not None and value > maximum:
        raise ValueError(
            f"<product-config {PRODUCT_CONFIG}>: {key} must be at most {maximum}, got {text!r}"
        )
    if value < minimum:
        raise ValueError(
            f"<product-config {PRODUCT_CONFIG}>: {key} must be at least "
            f"{minimum}, got {text!r}"
        )
    return value


def product_config(name):
    """The ``<product-config name>`` section of zope.conf (a dict), or ``{}``."""
    try:
        from App.config import getConfiguration
    except ImportError:  # pragma: no cover - only outside Zope
        return {}
    sections = getattr(getConfiguration(), "product_config", None) or {}
    return dict(sections.get(name) or {})


def worker_settings():
    return WorkerSettings.from_section(product_config(PRODUCT_CONFIG))
