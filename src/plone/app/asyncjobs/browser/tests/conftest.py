"""Fixtures for the browser tests (see ``__init__.py``).

The layer
---------

``tests/conftest.py`` creates pytest-plone's fixtures for
``ASYNCJOBS_FUNCTIONAL_TESTING`` in that folder only, and zope.pytestlayer
creates a layer's fixtures once per process: calling ``fixtures_factory``
here as well would leave one of the two folders without them, depending on
which is collected first.  So this folder drives the same layers itself,
under pytest-plone's name ``functional`` (on which pytest-plone's
``functional_portal`` and ``functional_app`` build), and shares
zope.pytestlayer's record of the layers that are set up: a layer already
set up for another folder is used as it is.  The layers that this folder
set up are torn down after its last test, not kept for the session: tests
collected after this folder (``monitor/tests``) clean up the global
component registry, which a Plone layer left set up does not survive.
The browser too is closed after the last browser test: nothing of it (its
processes, the driver's pipes and event loop) outlives this folder.

Processes
---------

Playwright starts its driver (Node.js) and the driver starts Chromium and
Chromium's helpers.  All of them carry a marker in their environment; when
the browser is closed, the ``browser`` fixture waits until no
process with that marker is left, kills any that is and fails.  Worker and
reactor threads are checked after each test as in ``tests/conftest.py``.
"""
import os
import shutil
import signal
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest
from plone.app.testing import PLONE_SITE_ID
from zope.pytestlayer.fixture import decorate_layer
from zope.pytestlayer.fixture import setup_layer
from zope.pytestlayer.fixture import teardown_layer

from plone.app.asyncjobs.browser.tests import CHROMIUM
from plone.app.asyncjobs.browser.tests import CHROMIUM_ARGS
from plone.app.asyncjobs.browser.tests import TIMEOUT
from plone.app.asyncjobs.browser.tests import screenshot
from plone.app.asyncjobs.testing import ASYNCJOBS_FUNCTIONAL_TESTING


LAYER = ASYNCJOBS_FUNCTIONAL_TESTING


def _layers_bottom_up(layer):
    """``layer`` and all its bases, each once, every base before its users."""
    result = []

    def visit(current):
        for base in current.__bases__:
            if base is not object:
                visit(base)
        if current not in result:
            result.append(current)

    visit(layer)
    return result


@pytest.fixture(scope="package")
def functional_layers(request):
    """Set up the layers that are not set up yet, for this folder's tests."""
    state = request.session.zopelayer_state
    ours = []

    def tear_down():
        for layer in reversed(ours):
            state.keep_for_whole_session.discard(layer)
            if layer in state.current:
                teardown_layer(layer, request)

    request.addfinalizer(tear_down)
    for layer in _layers_bottom_up(LAYER):
        if layer not in state.current:
            setup_layer(layer, request)
            ours.append(layer)
            # zope.pytestlayer's class fixtures must leave it alone.
            state.keep_for_whole_session.add(layer)
    return LAYER


@pytest.fixture
def functional(functional_layers, request):
    """``ASYNCJOBS_FUNCTIONAL_TESTING`` for one test: its own database, the
    WSGI server and a running dispatcher."""
    layers = _layers_bottom_up(LAYER)
    done = []
    try:
        for layer in layers:
            decorate_layer(layer, request)
            layer.testSetUp()
            done.append(layer)
        yield LAYER
    finally:
        for layer in reversed(done):
            decorate_layer(layer, request)
            layer.testTearDown()


@pytest.fixture
def portal_url(functional):
    """``http://host:port/plone``: the portal as the browser sees it."""
    return f"http://{functional['host']}:{functional['port']}/{PLONE_SITE_ID}"


# -- the browser -------------------------------------------------------------------

#: Environment variable that marks the processes of the browser fixture.
MARKER = "PLONE_ASYNCJOBS_BROWSER_TEST"

_open_browsers = []


def _marked_processes(token):
    """Live processes (not zombies) whose environment has ``MARKER=token``."""
    needle = f"{MARKER}={token}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(
                errors="replace")
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if stat.rsplit(")", 1)[1].split()[0] != "Z":
            found.append((int(entry.name), cmdline[:200]))
    return found


@pytest.fixture(scope="package")
def browser():
    """A headless Debian Chromium for this folder's tests (a Playwright
    ``Browser``), closed after the last of them."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"{CHROMIUM} is missing: the browser tests need Debian's chromium. "
            "Run `make browsers` (apt-get install chromium chromium-driver).",
            pytrace=False,
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("Playwright for Python is missing: run `make install`.", pytrace=False)

    token = uuid.uuid4().hex
    tmp = tempfile.mkdtemp(prefix="asyncjobs-browser-")
    patch = pytest.MonkeyPatch()
    # The driver copies os.environ when it starts, and Chromium inherits the
    # driver's environment: the marker finds them all, and TMPDIR keeps the
    # fresh profile (--user-data-dir) that Playwright makes in our folder.
    patch.setenv(MARKER, token)
    patch.setenv("TMPDIR", tmp)
    playwright = None
    try:
        try:
            playwright = sync_playwright().start()
        finally:
            patch.undo()
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=list(CHROMIUM_ARGS),
            timeout=TIMEOUT * 1000,
        )
        _open_browsers.append(chromium)
        try:
            yield chromium
        finally:
            _open_browsers.remove(chromium)
            chromium.close()
    finally:
        if playwright is not None:
            playwright.stop()
        left = _wait_for_no_marked_process(token, seconds=15)
        shutil.rmtree(tmp, ignore_errors=True)
        if left:
            for pid, _ in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            pytest.fail(
                "browser processes still running after the browser was closed "
                "(killed now): " + "; ".join(f"{pid} {cmd}" for pid, cmd in left),
                pytrace=False,
            )


def _wait_for_no_marked_process(token, seconds):
    deadline = time.monotonic() + seconds
    while True:
        left = _marked_processes(token)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


_PAGES = pytest.StashKey[list]()


@pytest.fixture
def page(browser, portal_url, request):
    """A fresh context (no cookies) and page; base URL ``portal_url + "/"``."""
    context = browser.new_context(
        base_url=portal_url + "/",
        viewport={"width": 1280, "height": 900},
        locale="en-US",
    )
    try:
        context.set_default_timeout(TIMEOUT * 1000)
        page = context.new_page()
        request.node.stash.setdefault(_PAGES, []).append(page)
        yield page
    finally:
        context.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """When a browser test fails, save a screenshot of each of its pages
    (``artifacts/screenshots/failures/<test>.png``) and name it in the report."""
    report = yield
    if report.failed and report.when in ("setup", "call"):
        pages = item.stash.get(_PAGES, [])
        for number, page in enumerate(pages):
            name = f"failures/{item.path.stem}-{item.name}"
            if len(pages) > 1:
                name += f"-{number}"
            try:
                path = screenshot(page, name)
            except Exception as error:  # a closed page, a dead browser
                report.sections.append(("screenshot", f"no screenshot: {error!r}"))
            else:
                report.sections.append(("screenshot", f"{path} ({page.url})"))
    return report


# -- nothing left behind -------------------------------------------------------------

_OUR_THREADS = ("asyncjobs worker", "plone.app.asyncjobs")


def _our_threads():
    return [t for t in threading.enumerate() if t.name.startswith(_OUR_THREADS)]


@pytest.fixture(autouse=True)
def nothing_left():
    """Fail a test that leaves a worker or reactor thread running (the
    layer's dispatcher is stopped before this check) or a browser context
    open (each ``page`` closes its own)."""
    from plone.app.asyncjobs.engine.testing.waiting import wait_until

    yield
    wait_until(lambda: not _our_threads(), seconds=10,
               describe=lambda: f"threads left running: {_our_threads()}")
    contexts = [context for browser in _open_browsers for context in browser.contexts]
    for context in contexts:
        context.close()
    assert not contexts, f"browser contexts left open (closed now): {contexts}"
