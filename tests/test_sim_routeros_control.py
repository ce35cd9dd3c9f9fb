"""The RouterOS emulator's HTTP control interface: requests to the control port, and what
an API client (librouteros) then meets on the router."""
from __future__ import annotations

import socket
import time

import librouteros
import pytest
import requests
from librouteros.exceptions import ConnectionClosed, TrapError
from librouteros.query import Key

from portal.sim.routeros import RouterSim

pytestmark = pytest.mark.router(control_port=0)
IP, MAC = "10.5.50.23", "AA:BB:CC:DD:EE:01"


def connect(sim):
    return librouteros.connect("127.0.0.1", "admin", "", port=sim.port, timeout=5)


@pytest.fixture
def api(router_sim):
    connection = connect(router_sim)
    yield connection
    connection.close()


def control(sim, method: str, path: str, body: dict | None = None, expect: int = 200):
    """One control request; checks the status and returns the JSON answer."""
    answer = requests.request(method, sim.control_url + path, json=body, timeout=10)
    assert answer.status_code == expect, answer.text
    return answer.json()


def login_device(api, ip=IP, mac=MAC, name="K7P2QX"):
    api.path("ip", "hotspot", "user").add(name=name, password="4839")
    tuple(api("/ip/hotspot/active/login", user=name, password="4839", ip=ip,
              **{"mac-address": mac}))


def test_status_names_both_ports_and_the_settings(router_sim, api):
    status = control(router_sim, "GET", "/status")
    assert status["api_port"] == router_sim.port and status["control_port"] == router_sim.control_port
    assert router_sim.control_port not in (0, router_sim.port)
    assert status["open_connections"] == 1 and status["version"] == "7.16"
    assert control(router_sim, "GET", "/settings") == {
        "refuse_logins": False, "latency_ms": 0, "max_sessions": 20}


def test_the_control_port_is_off_unless_asked():
    with RouterSim() as sim:
        assert sim.control_port is None and sim.control_url is None


def test_the_control_port_listens_on_the_emulators_host_only():
    with RouterSim(host="127.0.0.2", control_port=0) as sim:
        assert sim.control_url == f"http://127.0.0.2:{sim.control_port}"
        assert requests.get(sim.control_url + "/status", timeout=5).status_code == 200
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", sim.control_port), timeout=1).close()


def test_refused_logins_on_and_off(router_sim):
    assert control(router_sim, "POST", "/settings", {"refuse_logins": True})["refuse_logins"]
    with pytest.raises(TrapError, match=r"invalid user name or password \(6\)"):
        connect(router_sim)
    control(router_sim, "POST", "/settings", {"refuse_logins": False})
    connect(router_sim).close()


def test_latency_delays_every_reply(router_sim, api):
    control(router_sim, "POST", "/settings", {"latency_ms": 150})
    started = time.monotonic()
    tuple(api.path("system", "identity"))
    assert time.monotonic() - started >= 0.15
    control(router_sim, "POST", "/settings", {"latency_ms": 0})
    started = time.monotonic()
    tuple(api.path("system", "identity"))
    assert time.monotonic() - started < 0.15


def test_max_sessions_refuses_the_next_login_and_shows_on_the_router(router_sim, api):
    control(router_sim, "POST", "/settings", {"max_sessions": 1})
    with pytest.raises(TrapError, match="too many sessions"):
        connect(router_sim)
    (service,) = [row for row in api.path("ip", "service") if row["name"] == "api"]
    assert service["max-sessions"] == 1


@pytest.mark.parametrize("body, error", [
    ({"latency_ms": -1}, "latency_ms must be 0 or more"),
    ({"max_sessions": 0}, "max_sessions must be 1 or more"),
    ({"refuse_logins": "yes"}, "refuse_logins must be true or false"),
    ({"refuse_logins": True, "latency_ms": "slow"}, "latency_ms must be a number"),
    ({"latency": 5}, "unknown field latency; known: latency_ms, max_sessions, refuse_logins"),
])
def test_a_wrong_setting_is_refused_and_changes_nothing(router_sim, body, error):
    assert control(router_sim, "POST", "/settings", body, expect=400) == {"error": error}
    assert control(router_sim, "GET", "/settings") == {
        "refuse_logins": False, "latency_ms": 0, "max_sessions": 20}
    connect(router_sim).close()


def test_drop_every_connection_now(router_sim, api):
    other = connect(router_sim)
    assert control(router_sim, "POST", "/connections/drop") == {"dropped": 2}
    for client in (api, other):
        with pytest.raises((ConnectionClosed, ConnectionError)):
            tuple(client.path("system", "identity"))
    other.close()
    connect(router_sim).close()  # the router itself is still there


def test_drop_after_some_more_replies(router_sim, api):
    for name in ("D1", "D2", "D3"):
        api.path("ip", "hotspot", "user").add(name=name)
    control(router_sim, "POST", "/connections/drop", {"after_replies": 2})
    with pytest.raises((ConnectionClosed, ConnectionError)):
        tuple(api.path("ip", "hotspot", "user"))
    again = connect(router_sim)
    try:  # one shot: the next connection is served in full
        assert len(tuple(again.path("ip", "hotspot", "user"))) == 3
    finally:
        again.close()


def test_reboot_renumbers_ids_and_ends_sessions(router_sim, api):
    old_id = api.path("ip", "hotspot", "user").add(name="R1", password="pw")
    tuple(api("/ip/hotspot/active/login", user="R1", password="pw", ip=IP,
              **{"mac-address": MAC}))
    assert control(router_sim, "POST", "/reboot") == {"rebooted": True}
    with pytest.raises((ConnectionClosed, ConnectionError)):
        tuple(api.path("system", "identity"))
    after = connect(router_sim)
    try:
        (user,) = tuple(after.path("ip", "hotspot", "user"))
        assert user["name"] == "R1" and user[".id"] != old_id
        assert tuple(after.path("ip", "hotspot", "active")) == ()
    finally:
        after.close()


def test_factory_reset_leaves_no_hotspot_to_join(router_sim, api):
    api.path("ip", "hotspot", "user").add(name="F1")
    assert control(router_sim, "POST", "/factory-reset") == {"factory_reset": True}
    assert control(router_sim, "GET", "/tables/ip/hotspot")["rows"] == []
    assert control(router_sim, "GET", "/tables/ip/hotspot/user")["rows"] == []
    refused = control(router_sim, "POST", "/hosts", {"ip": IP, "mac": MAC}, expect=409)
    assert refused == {"error": "no hotspot server is running: a device cannot join"}
    connect(router_sim).close()


def test_a_device_joins_and_an_api_client_finds_it_by_ip(router_sim, api):
    row = control(router_sim, "POST", "/hosts", {"ip": IP, "mac": "aa:bb:cc:dd:ee:01"},
                  expect=201)
    assert (row["address"], row["mac-address"], row["authorized"]) == (IP, MAC, "false")
    assert row["found-by"] == f"DHCP {IP}" and row[".id"].startswith("*")
    found = tuple(api.path("ip", "hotspot", "host").select(Key("mac-address"))
                  .where(Key("address") == IP))
    assert found == ({"mac-address": MAC},)
    assert control(router_sim, "GET", f"/tables/ip/hotspot/host?address={IP}")["rows"] == [row]
    assert control(router_sim, "GET", "/tables/ip/hotspot/host?address=10.5.50.99")["rows"] == []


@pytest.mark.parametrize("body, error", [
    ({"ip": IP}, "mac is missing"),
    ({"ip": "10.5.50", "mac": MAC}, "not an IPv4 address: '10.5.50'"),
    ({"ip": IP, "mac": "AA:BB"}, "not a MAC address: 'AA:BB'"),
    ({"ip": IP, "mac": MAC, "name": "phone"}, "unknown field name; known: ip, mac"),
])
def test_a_malformed_join_is_refused(router_sim, body, error):
    assert control(router_sim, "POST", "/hosts", body, expect=400) == {"error": error}
    assert router_sim.rows("/ip/hotspot/host") == []


def test_a_device_leaves_and_its_session_ends(router_sim, api):
    control(router_sim, "POST", "/hosts", {"ip": IP, "mac": MAC}, expect=201)
    login_device(api)
    assert control(router_sim, "GET", "/tables/ip/hotspot/host")["rows"][0]["authorized"] == "true"
    assert control(router_sim, "DELETE", f"/hosts/{MAC}") == {"removed": 1}
    assert tuple(api.path("ip", "hotspot", "host")) == ()
    assert tuple(api.path("ip", "hotspot", "active")) == ()
    refused = control(router_sim, "DELETE", f"/hosts/{IP}", expect=404)
    assert refused == {"error": f"no host {IP} in /ip/hotspot/host"}


def test_a_device_logs_in_on_the_routers_own_page(router_sim, api):
    api.path("ip", "hotspot", "user").add(name="48213377", password="48213377")
    control(router_sim, "POST", "/hosts", {"ip": IP, "mac": MAC}, expect=201)
    wrong = {"user": "48213377", "password": "nope", "ip": IP, "mac": MAC}
    refused = control(router_sim, "POST", "/login", wrong, expect=403)
    assert refused == {"error": "login refused: invalid username or password"}
    assert tuple(api.path("ip", "hotspot", "active")) == ()
    session = control(router_sim, "POST", "/login", {**wrong, "password": "48213377"},
                      expect=201)
    assert (session["user"], session["address"], session["login-by"]) == (
        "48213377", IP, "http-chap")
    # An API client sees the session, its user name still the router's string.
    (active,) = tuple(api.path("ip", "hotspot", "active"))
    assert (active["address"], active["mac-address"]) == (IP, MAC)
    assert control(router_sim, "GET", "/tables/ip/hotspot/host")["rows"][0]["authorized"] == "true"
    assert control(router_sim, "POST", "/login", {**wrong, "ip": "10.5"}, expect=400) == {
        "error": "not an IPv4 address: '10.5'"}


def test_read_any_table(router_sim, api):
    api.path("ip", "hotspot", "user").add(name="T1", comment="batch12", **{"limit-uptime": "1h"})
    answer = control(router_sim, "GET", "/tables/ip/hotspot/user")
    assert answer["menu"] == "/ip/hotspot/user"
    assert [(r["name"], r["limit-uptime"], r["comment"]) for r in answer["rows"]] == [
        ("T1", "1h", "batch12")]
    assert "password" in answer["rows"][0]  # as the API prints it
    (identity,) = control(router_sim, "GET", "/tables/system/identity")["rows"]
    assert identity == {"name": "MikroTik"}
    assert control(router_sim, "GET", "/tables/ip/nothing", expect=404) == {
        "error": "no menu /ip/nothing"}


def test_the_clock_and_traffic_age_a_session(router_sim, api):
    login_device(api)
    assert control(router_sim, "POST", "/clock", {"advance": 90}) == {"uptime": "1m30s"}
    answer = control(router_sim, "POST", "/traffic",
                     {"who": MAC, "bytes_in": 3000, "bytes_out": 50000})
    assert answer == {"sessions": 1}
    (session,) = tuple(api.path("ip", "hotspot", "active"))
    assert (session["uptime"], session["bytes-in"], session["bytes-out"]) == (
        "1m30s", 3000, 50000)


def test_a_taken_control_port_stops_the_emulator_from_starting():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        sim = RouterSim(control_port=taken.getsockname()[1])
        with pytest.raises(OSError):
            sim.start()
    with pytest.raises(OSError):  # the API port was closed again
        socket.create_connection(("127.0.0.1", sim.port), timeout=1).close()


@pytest.mark.router(control_port=0)
def test_resource_and_files_over_the_control_interface(router_sim):
    base = router_sim.control_url
    answer = requests.post(f"{base}/resource", json={"architecture_name": "mipsbe",
                                                     "free_memory": 20_000_000}, timeout=5)
    assert answer.status_code == 200 and answer.json()["architecture-name"] == "mipsbe"
    assert router_sim.rows("/system/resource")[0]["free-memory"] == "20000000"
    refused = requests.post(f"{base}/resource", json={"free_memory": -1}, timeout=5)
    assert refused.status_code == 400
    assert requests.get(f"{base}/files/kibanda/login.html", timeout=5).status_code == 404
    router_sim.state.insert("/file", {"name": "kibanda/login.html", "contents": "karibu",
                                      "size": "6"})
    stored = requests.get(f"{base}/files/kibanda/login.html", timeout=5).json()
    assert stored == {"name": "kibanda/login.html", "size": 6, "contents": "karibu"}
