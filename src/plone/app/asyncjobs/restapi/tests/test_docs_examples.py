"""Replay the examples of ``docs/restapi.rst`` (then those of
``docs/schedules.rst``) against the test server.

The document alternates ``.. code-block:: http`` requests and responses.
The test sets up what the examples assume (:func:`scenario`), sends each
request as written (its ``Host`` header makes the server's URLs those of
the document) and compares the response with the document's:

* the status code, and each header the document shows;
* the JSON body: the same keys everywhere, the same values, except for
  the keys in :data:`VOLATILE` (times and the like), whose values need
  only be of the same JSON type;
* ``{name}`` placeholders in strings stand for values that change from
  one run to the next: those of the scenario are known in advance, the
  others (``{retry}``, ``{cursor}``) are taken from the first response
  that shows them and must be the same wherever they appear again.

After each exchange the test waits until no job is due or running, so
that the next example sees a settled state.  Every endpoint must have an
example.
"""
import base64
import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from plone import api
from plone.app.testing import login
from plone.app.testing import setRoles

from plone.app.asyncjobs import api as jobs_api
from plone.app.asyncjobs.engine import schedules
from plone.app.asyncjobs.inspection import job_id
from plone.app.asyncjobs.restapi.services import routes
from plone.app.asyncjobs.restapi.services.service import NAME
from plone.app.asyncjobs.restapi.tests import wait_until_idle
from plone.app.asyncjobs.schedules import schedulables
from plone.app.asyncjobs.schedules.zcml import make_schedule
from plone.app.asyncjobs.testing import wait_for_result
from plone.app.asyncjobs.tests import jobs


DOCUMENT = Path(__file__).parents[6] / "docs" / "restapi.rst"
#: Documents whose examples are replayed after DOCUMENT's, in the same scenario.
MORE_DOCUMENTS = (DOCUMENT.with_name("schedules.rst"),)
#: The user who queues the examples' jobs, and her password.
JANE = ("jane", "secret-jane")
#: Keys whose values vary from run to run: only their JSON type is compared.
VOLATILE = {"activated", "assigner", "begin_after", "ended", "last_ping", "process",
            "retry_history", "started", "traceback", "uptime_seconds"}
PLACEHOLDER = re.compile(r"\{(\w+)\}")


# -- reading the document ----------------------------------------------------------------


def http_blocks(text):
    """The contents of the ``.. code-block:: http`` blocks, dedented."""
    blocks = []
    lines = text.splitlines()
    for number, line in enumerate(lines):
        if line.strip() != ".. code-block:: http":
            continue
        body = []
        for following in lines[number + 1:]:
            if following.strip() and not following.startswith(" "):
                break
            body.append(following)
        indent = min(len(b) - len(b.lstrip()) for b in body if b.strip())
        blocks.append("\n".join(b[indent:] for b in body).strip("\n"))
    return blocks


def split_message(block):
    """``(first line, {header: value}, body)`` of an HTTP message."""
    head, _, body = block.partition("\n\n")
    first, *header_lines = head.splitlines()
    headers = dict(line.split(": ", 1) for line in header_lines)
    return first, headers, body.strip()


def examples(text):
    """``(request, response)`` pairs of messages, in the document's order."""
    blocks = [split_message(block) for block in http_blocks(text)]
    requests_ = blocks[0::2]
    responses = blocks[1::2]
    assert len(requests_) == len(responses), "every request needs a response"
    for (first, _, _), (status, _, _) in zip(requests_, responses):
        assert not first.startswith("HTTP/"), f"a response where a request is due: {first}"
        assert status.startswith("HTTP/1.1 "), f"a request where a response is due: {status}"
    return list(zip(requests_, responses))


# -- comparing ----------------------------------------------------------------------------


def fill(text, bindings):
    """``text`` with its placeholders replaced by their (bound) values."""
    return PLACEHOLDER.sub(lambda match: bindings[match.group(1)], text)


def match_text(expected, actual, bindings, where):
    """Match a string with placeholders; bind the unbound ones."""
    pattern = []
    position = 0
    for match in PLACEHOLDER.finditer(expected):
        pattern.append(re.escape(expected[position:match.start()]))
        name = match.group(1)
        if name in bindings:
            pattern.append(re.escape(bindings[name]))
        else:
            pattern.append(f"(?P<{name}>[^/?&#\\s]+)")
        position = match.end()
    pattern.append(re.escape(expected[position:]))
    found = isinstance(actual, str) and re.fullmatch("".join(pattern), actual)
    assert found, f"{where}: expected {fill_known(expected, bindings)!r}, got {actual!r}"
    bindings.update(found.groupdict())


def fill_known(text, bindings):
    return PLACEHOLDER.sub(lambda m: bindings.get(m.group(1), m.group(0)), text)


def json_type(value):
    return type(value).__name__ if not isinstance(value, (int, float)) or isinstance(
        value, bool) else "number"


def compare(expected, actual, bindings, where="body"):
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{where}: expected an object, got {actual!r}"
        assert sorted(actual) == sorted(expected), f"{where}: keys differ"
        for key, value in expected.items():
            if key in VOLATILE:
                assert json_type(actual[key]) == json_type(value), f"{where}.{key}: type"
            else:
                compare(value, actual[key], bindings, f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), (
            f"{where}: expected {len(expected)} items, got {actual!r}")
        for number, (item, got) in enumerate(zip(expected, actual)):
            compare(item, got, bindings, f"{where}[{number}]")
    elif isinstance(expected, str):
        match_text(expected, actual, bindings, where)
    else:
        assert actual == expected and json_type(actual) == json_type(expected), (
            f"{where}: expected {expected!r}, got {actual!r}")


# -- the scenario ---------------------------------------------------------------------------


def scenario(site, dispatcher, monkeypatch):
    """What the examples assume; returns the placeholders' values.

    Jane, a Member, queued four jobs: two that succeeded one after the
    other, one that failed, one scheduled for tomorrow; a schedule of the
    site runs as Jane; the site offers ``jobs.mark`` as the schedulable
    ``mark``.
    """
    monkeypatch.setattr(schedulables, "SCHEDULABLES", {"mark": schedulables.Schedulable(
        "mark", "plone.app.asyncjobs.tests.jobs:mark", "Leave a mark")})
    api.user.create(email="jane@example.org", username=JANE[0], password=JANE[1])
    setRoles(site, JANE[0], ["Member"])
    login(site, JANE[0])
    succeeded = jobs_api.queue_job(jobs.add, site, 40, b=2)
    wait_for_result(succeeded)
    succeeded_2 = jobs_api.queue_job(jobs.add, site, 1, b=1)
    wait_for_result(succeeded_2)
    failed = jobs_api.queue_job(jobs.fail, site, "the printer is on fire",
                                retry_policy="never")
    wait_for_result(failed)
    scheduled = jobs_api.queue_job(jobs.mark, site, "hello", delay=timedelta(days=1))
    schedules.install(site._p_jar, make_schedule(
        "nightly-report", jobs.mark, "/plone", cron="0 3 * * *", timezone="Europe/Brussels",
        args=("report",), user=JANE[0]))
    wait_until_idle(site)
    return {"succeeded": job_id(succeeded), "succeeded_2": job_id(succeeded_2),
            "failed": job_id(failed), "scheduled": job_id(scheduled),
            "dispatcher": str(dispatcher.uuid)}


def test_the_credentials_of_the_examples():
    """The examples' Authorization headers are those of the test users."""
    text = DOCUMENT.read_text()
    for user, password in (("admin", "secret"), JANE):
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        assert f"Authorization: Basic {token}" in text


def test_the_examples(site, dispatcher, functional, monkeypatch):
    bindings = scenario(site, dispatcher, monkeypatch)
    server = f"http://{functional['host']}:{functional['port']}"
    covered = set()
    text = "\n".join(document.read_text() for document in (DOCUMENT, *MORE_DOCUMENTS))
    for (request_line, headers, body), expected in examples(text):
        method, path, _ = fill(request_line, bindings).split(" ")
        segments = path.split(f"/{NAME}", 1)[1].split("?")[0].strip("/")
        for endpoint, (handler, _) in routes.match(
                segments.split("/") if segments else []).items():
            if endpoint == method:
                covered.add(handler)
        response = requests.request(method, server + path, headers=headers,
                                    data=fill(body, bindings).encode(), timeout=30)
        where = f"{method} {path}"
        status_line, expected_headers, expected_body = expected
        assert f"HTTP/1.1 {response.status_code} {response.reason}" == status_line, (
            f"{where}: {response.status_code} {response.text}")
        for name, value in expected_headers.items():
            match_text(value, response.headers.get(name), bindings, f"{where} {name}")
        if expected_body:
            compare(json.loads(expected_body), response.json(), bindings, where)
        else:
            assert response.content == b"", where
        wait_until_idle(site)
    assert covered == {handler for _, _, handler in routes.ROUTES}, "endpoints without example"


@pytest.mark.parametrize("expected, actual, message", [
    ({"a": 1}, {"a": 1, "b": 2}, "keys differ"),
    ({"a": [1]}, {"a": [1, 2]}, "expected 1 items"),
    ({"a": "x{id}"}, {"a": "y12"}, "expected 'x{id}'"),
    ({"started": "2026-01-01T00:00:00+00:00"}, {"started": None}, "type"),
    ({"a": 1}, {"a": True}, "expected 1"),
])
def test_the_comparison_sees_differences(expected, actual, message):
    with pytest.raises(AssertionError, match=re.escape(message)):
        compare(expected, actual, {})


def test_placeholders_bind_once():
    bindings = {}
    compare({"a": "jobs/{id}", "b": "{id}"}, {"a": "jobs/12", "b": "12"}, bindings)
    assert bindings == {"id": "12"}
    with pytest.raises(AssertionError):
        compare({"b": "{id}"}, {"b": "13"}, bindings)
