"""A worker process for the metrics tests: the worker runtime (dispatcher
and metrics endpoint, as a Zope worker starts them) over a ZEO server,
until SIGTERM (which the runtime handles: it stops, then exits)::

    python -m plone.app.asyncjobs.tests.metrics_worker STORAGE_CONFIG_FILE PORT READY_FILE

``ZC_ASYNC_UUID`` must name the worker's UUID file.  READY_FILE is
written once the dispatcher has polled.
"""
import os
import signal
import sys
from pathlib import Path

from plone.app.asyncjobs.engine.testing.waiting import wait_for_poll
from plone.app.asyncjobs.engine.testing.zeo import open_db
from plone.app.asyncjobs.worker import runtime
from plone.app.asyncjobs.worker.config import WorkerSettings
from plone.app.asyncjobs.worker.roles import SINGLE_DB


def main(config_file, port, ready_file):
    db = open_db(Path(config_file).read_text())
    settings = WorkerSettings.from_section({"poll-interval": "0.2", "metrics-port": port})
    started = runtime.start(db, role=SINGLE_DB, settings=settings)
    wait_for_poll(started.dispatcher, seconds=60)
    Path(ready_file).write_text(str(os.getpid()))
    try:
        while True:
            signal.pause()
    finally:
        db.close()


if __name__ == "__main__":
    main(*sys.argv[1:])
