"""The identity of this process as a worker.

Each worker process is identified by a UUID kept in a file, so that a
restarted process recognises the jobs it held before it stopped.  The
environment variable ``ZC_ASYNC_UUID`` names the file (the name zc.async
used, so existing deployments keep working); without it the file is
``uuid.txt`` in the current directory.  A missing file is created with a
fresh UUID.  Nothing is read at import time: :func:`get_uuid` reads the file
on first use and caches the answer.
"""
import os
import threading
import uuid
from pathlib import Path

from plone.app.asyncjobs.engine.log import events


ENVIRONMENT_VARIABLE = "ZC_ASYNC_UUID"
DEFAULT_FILE = "uuid.txt"

_EXPLANATION = """
This file holds the identity of one worker process of plone.app.asyncjobs
(the first line).  Each worker process needs a file of its own.  Deleting
the file gives the process a new identity at its next start; the jobs it
held are then recovered by another worker once this identity is found dead.
"""

_cached = None


def uuid_path():
    """Return the path of the UUID file this process uses."""
    return Path(os.environ.get(ENVIRONMENT_VARIABLE) or DEFAULT_FILE)


def get_uuid(refresh=False):
    """Return this process's UUID, creating its file if needed."""
    global _cached
    if _cached is None or refresh:
        _cached = _read_or_create(uuid_path())
    return _cached


def configured_uuid():
    """Return this process's UUID if ``ZC_ASYNC_UUID`` is set, else ``None``.

    Producers use it to stamp the jobs they queue without creating a
    ``uuid.txt`` in whatever directory they happen to run in.
    """
    if _cached is not None or os.environ.get(ENVIRONMENT_VARIABLE):
        return get_uuid()
    return None


def _read_or_create(path):
    if path.exists():
        first_line = path.read_text().strip().splitlines()[0]
        try:
            return uuid.UUID(first_line)
        except ValueError:
            raise ValueError(
                f"{path} should start with a UUID, found {first_line!r}"
            ) from None
    value = uuid.uuid1()
    path.parent.mkdir(parents=True, exist_ok=True)
    # Write then rename, so that a process starting at the same moment
    # never reads a half-written file; if it created one first, use it.
    draft = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
    draft.write_text(f"{value}\n{_EXPLANATION}")
    try:
        os.link(draft, path)
    except FileExistsError:
        return _read_or_create(path)
    finally:
        draft.unlink()
    events.info("created worker identity %s in %s", value, path)
    return value
