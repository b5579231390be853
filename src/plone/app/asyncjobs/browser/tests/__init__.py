"""Browser tests: a real headless Chromium against a running Plone.

Debian's ``chromium`` (``/usr/bin/chromium``, installed by ``make browsers``,
which ``make test`` runs) is driven by Playwright for Python; Playwright
never downloads a browser of its own here.  The fixtures are in
``conftest.py``:

``functional``
    ``ASYNCJOBS_FUNCTIONAL_TESTING`` for the test: a WSGI server
    (``functional["host"]``, ``functional["port"]``) and a running
    dispatcher on the test's database.  pytest-plone's
    ``functional_portal`` and ``functional_app`` work with it.
``browser``
    One Chromium for all the tests of this folder (a Playwright
    ``Browser``), closed after the last of them.
``page``
    A fresh browser context (no cookies) and page for each test, with the
    portal's URL as base URL: ``page.goto("@@overview-controlpanel")``
    (no leading slash) opens ``http://host:port/plone/@@overview-controlpanel``.
``portal_url``
    ``http://host:port/plone``.

Objects that a test creates must be committed (``transaction.commit()``)
before the browser can see them.  A test that fails leaves a screenshot of
each of its pages in ``artifacts/screenshots/failures/``.

The helpers below are imported by the tests::

    from plone.app.asyncjobs.browser.tests import login, screenshot
"""
import re
from pathlib import Path


#: Debian's Chromium (a launcher script) and its driver (Selenium's; unused
#: by Playwright, installed by ``make browsers`` for other tools).
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

#: Flags for a headless Chromium on a machine whose only network is the
#: loopback: without the background-networking ones it tries to reach
#: Google's services.  Playwright adds ``--headless`` and a fresh
#: ``--user-data-dir`` of its own.
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)

#: The checkout's root (where ``setup.py`` is), six levels above this folder.
REPOSITORY = Path(__file__).resolve().parents[6]

#: Where :func:`screenshot` saves (``artifacts/`` is ignored by git).
SCREENSHOTS = REPOSITORY / "artifacts" / "screenshots"

#: Seconds a browser action may take before it fails.
TIMEOUT = 30


def screenshot(page, name, full_page=True):
    """Save a PNG of ``page`` as ``artifacts/screenshots/<name>.png``.

    ``name`` may contain ``/`` for a subfolder; other characters that are
    unsafe in file names become ``_``.  Returns the path.
    """
    parts = [re.sub(r"[^A-Za-z0-9_.-]+", "_", part) for part in name.split("/") if part]
    if not parts or any(part in (".", "..") for part in parts):
        raise ValueError(f"not a screenshot name: {name!r}")
    path = SCREENSHOTS.joinpath(*parts).with_name(parts[-1] + ".png")
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=full_page)
    return path


def login(page, user, password):
    """Log in through Plone's login form (``<portal>/login``).

    ``user`` and ``password`` as in plone.app.testing: ``SITE_OWNER_NAME``
    and ``SITE_OWNER_PASSWORD`` (the Zope root's Manager) or
    ``TEST_USER_NAME`` and ``TEST_USER_PASSWORD`` (the portal's test user;
    give it roles with ``setRoles`` and commit before logging in).  Raises
    ``AssertionError`` with Plone's message when Plone refuses the login.
    """
    page.goto("login")
    page.fill("#__ac_name", user)
    page.fill("#__ac_password", password)
    with page.expect_navigation(wait_until="load"):
        page.click("[name='buttons.login']")
    if not any(cookie["name"] == "__ac" for cookie in page.context.cookies()):
        messages = page.locator(".portalMessage, .alert, .invalid-feedback").all_inner_texts()
        raise AssertionError(
            f"logging in as {user!r} failed at {page.url}: "
            + (" / ".join(m.strip() for m in messages if m.strip()) or "no __ac cookie")
        )
