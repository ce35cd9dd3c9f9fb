"""The emulators' shared JSON control server, driven over HTTP with requests."""
from __future__ import annotations

import socket

import pytest
import requests

from portal.sim.control import ControlError, ControlServer, Route, field, unknown_fields


@pytest.fixture
def server():
    """A control server with a few routes that echo what they were given."""
    counter = {"value": 0}

    def read(request):
        return {"value": counter["value"], "query": request.query}

    def add(request):
        unknown_fields(request.body, {"by"})
        counter["value"] += field(request.body, "by", int)
        return 201, {"value": counter["value"]}

    def echo(request):
        return {"params": request.params}

    def refuse(_request):
        raise ControlError(409, "not now")

    control = ControlServer("127.0.0.1", 0, [
        Route("GET", "/counter", read), Route("POST", "/counter", add),
        Route("DELETE", "/items/<item>", echo), Route("GET", "/tables/<path:menu>", echo),
        Route("POST", "/busy", refuse),
    ]).start()
    control.url = f"http://127.0.0.1:{control.port}"
    yield control
    control.stop()


def test_json_in_and_out_with_the_routes_status(server):
    answer = requests.post(server.url + "/counter", json={"by": 3}, timeout=5)
    assert answer.status_code == 201 and answer.json() == {"value": 3}
    assert answer.headers["Content-Type"] == "application/json"
    answer = requests.get(server.url + "/counter?x=1&empty=", timeout=5)
    assert answer.json() == {"value": 3, "query": {"x": "1", "empty": ""}}


def test_path_parameters_are_unquoted(server):
    answer = requests.delete(server.url + "/items/AA%3ABB", timeout=5)
    assert answer.json() == {"params": {"item": "AA:BB"}}
    answer = requests.get(server.url + "/tables/ip/hotspot/host", timeout=5)
    assert answer.json() == {"params": {"menu": "ip/hotspot/host"}}


@pytest.mark.parametrize("method, path, body, status, error", [
    ("GET", "/nothing", None, 404, "no control at /nothing"),
    ("PUT", "/counter", None, 405, "PUT not allowed here; use GET, POST"),
    ("POST", "/counter", b"{not json", 400, "the body is not JSON"),
    ("POST", "/counter", b"[1, 2]", 400, "the body must be a JSON object"),
    ("POST", "/counter", b"{}", 400, "by is missing"),
    ("POST", "/counter", b'{"by": "3"}', 400, "by must be a whole number"),
    ("POST", "/counter", b'{"by": true}', 400, "by must be a whole number"),
    ("POST", "/counter", b'{"by": 1, "bye": 2}', 400, "unknown field bye; known: by"),
    ("POST", "/busy", None, 409, "not now"),
])
def test_a_wrong_request_is_answered_with_an_error_and_changes_nothing(
        server, method, path, body, status, error):
    answer = requests.request(method, server.url + path, data=body, timeout=5)
    assert answer.status_code == status and answer.json() == {"error": error}
    assert requests.get(server.url + "/counter", timeout=5).json()["value"] == 0


def test_stop_closes_the_port(server):
    port = server.port
    server.stop()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
