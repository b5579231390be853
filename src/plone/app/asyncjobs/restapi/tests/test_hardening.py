"""Bodies too large or too deep, the Content-Type's case, unexpected errors."""
import pytest

from plone.app.asyncjobs.restapi.services import service as service_module
from plone.app.asyncjobs.restapi.services.service import MAX_BODY_BYTES
from plone.app.asyncjobs.restapi.services.service import MAX_BODY_DEPTH


JSON = {"Content-Type": "application/json"}


def agent_path(dispatcher):
    return f"dispatchers/{dispatcher.uuid}/queues/_default_/agents/main"


@pytest.mark.parametrize("body", [
    "[" * 100_000 + "]" * 100_000,          # the body: too large
    "[" * 30_000 + "]" * 30_000,            # small enough, far too deep for the parser
    '{"days": ' + "[" * (MAX_BODY_DEPTH + 1) + "]" * (MAX_BODY_DEPTH + 1) + "}",
    '{"days": "' + "x" * MAX_BODY_BYTES + '"}',
])
def test_bodies_too_large_or_too_deep_get_a_json_400(client, dispatcher, body):
    for answer in (client.post("purge", data=body, headers=JSON),
                   client.patch(agent_path(dispatcher), data=body, headers=JSON)):
        assert answer.status_code == 400, answer.text
        error = answer.json()["error"]
        assert error["field"] == "body" and "traceback" not in answer.text.lower()
        assert error["message"].startswith(("body: longer than", "body: nested more than"))


def test_a_body_nested_within_the_limit_reaches_the_field_check(client):
    answer = client.post("purge", data='{"days": [[1]]}', headers=JSON)
    assert answer.status_code == 400
    assert answer.json()["error"] == {"type": "BadRequest", "field": "days",
                                      "message": "days: not a number: [[1]]"}


@pytest.mark.parametrize("content_type", ["Application/JSON", "APPLICATION/JSON; charset=UTF-8"])
def test_the_content_type_is_matched_without_regard_to_case(client, content_type):
    answer = client.post("purge", data='{"days": 36500}', headers={"Content-Type": content_type})
    assert answer.status_code == 200 and answer.json() == {"removed": 0}


@pytest.mark.parametrize("user", ["admin", "siteadmin"])
def test_an_unexpected_error_answers_500_without_a_traceback(client_as, monkeypatch, user):
    def broken(queues, scope, now=None):
        raise RuntimeError("a bug in the overview, at /srv/secret/path.py")

    monkeypatch.setattr(service_module.routes.overview.inspection, "overview", broken)
    answer = client_as(user).get()
    assert answer.status_code == 500
    error = answer.json()["error"]
    assert error["type"] == "InternalServerError"
    assert "secret" not in answer.text and "Traceback" not in answer.text
    assert "its log has the details under" in error["message"]
