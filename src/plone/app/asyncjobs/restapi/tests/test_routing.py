"""Paths and methods that are not endpoints."""
import pytest


@pytest.mark.parametrize("path", ["nothing", "jobs/1/2", "jobs/1/explode", "dispatchers/x/y",
                                  "purge/now"])
def test_unknown_endpoints(client, path):
    response = client.get(path)
    assert response.status_code == 404
    assert response.json() == {"error": {
        "type": "NotFound", "message": f"there is no endpoint {client.url(path)}"}}


@pytest.mark.parametrize("method, path, allowed", [
    ("POST", "", "GET"),
    ("DELETE", "jobs", "GET"),
    ("GET", "jobs/1/retry", "POST"),
    ("PATCH", "jobs/1", "DELETE, GET"),
    ("GET", "purge", "POST"),
    ("DELETE", "dispatchers/x", "GET"),
    ("GET", "dispatchers/x/queues/_default_/agents/main", "PATCH"),
])
def test_other_methods(client, method, path, allowed):
    response = client.request(method, path, json={})
    assert response.status_code == 405
    assert response.headers["Allow"] == allowed
    assert response.json() == {"error": {
        "type": "MethodNotAllowed", "message": f"this endpoint takes {allowed}"}}
