"""Devices joining and leaving the emulated hotspot, seen through /ip/hotspot/host.

``RouterSim.device_joins(ip, mac)`` is what a real router does when a phone gets a DHCP
lease: a row in /ip/hotspot/host, not authorized. A client reads it back with librouteros
or with a raw API sentence (``?address=`` query, ``.proplist``).
"""
from __future__ import annotations

import socket

import librouteros
import pytest
from librouteros.exceptions import ConnectionClosed
from librouteros.query import Key

from portal.routeros.wire import SocketReader, encode_sentence
from portal.sim.routeros import RouterSim
from portal.sim.routeros_hotspot import NoHotspotServer

IP, MAC = "10.5.50.23", "AA:BB:CC:DD:EE:01"
OTHER_IP, OTHER_MAC = "10.5.50.24", "AA:BB:CC:DD:EE:02"


@pytest.fixture
def api(router_sim):
    connection = librouteros.connect("127.0.0.1", "admin", "", port=router_sim.port, timeout=5)
    yield connection
    connection.close()


def raw_call(port: int, *words: str) -> list[list[str]]:
    """Log in on a bare socket, send one command, return every reply sentence."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        reader = SocketReader(sock)
        sock.sendall(encode_sentence(["/login", "=name=admin", "=password="]))
        assert reader.read_sentence() == ["!done"]
        sock.sendall(encode_sentence(list(words)))
        replies = []
        while not replies or replies[-1][0] != "!done":
            replies.append(reader.read_sentence())
        return replies


def hosts_at(api, ip: str) -> tuple:
    """What a portal asks to check a claimed MAC: the host rows for a claimed ip."""
    return tuple(api.path("ip", "hotspot", "host")
                 .select(Key("mac-address"), Key("authorized"), Key("found-by"))
                 .where(Key("address") == ip))


def test_a_joining_device_is_a_host_not_authorized(router_sim, api):
    row = router_sim.device_joins(IP, "aa-bb-cc-dd-ee-01")
    assert row["mac-address"] == MAC and row["address"] == row["to-address"] == IP
    assert row["server"] == "hotspot1" and row["authorized"] == "false"
    assert hosts_at(api, IP) == ({"mac-address": MAC, "authorized": False,
                                  "found-by": f"DHCP {IP}"},)
    assert hosts_at(api, OTHER_IP) == ()


def test_raw_print_with_an_address_query_and_proplist(router_sim):
    router_sim.device_joins(IP, MAC)
    router_sim.device_joins(OTHER_IP, OTHER_MAC)
    replies = raw_call(router_sim.port, "/ip/hotspot/host/print",
                       "=.proplist=mac-address,authorized", f"?address={OTHER_IP}")
    assert replies == [["!re", f"=mac-address={OTHER_MAC}", "=authorized=false"], ["!done"]]


def test_logging_in_authorizes_the_same_host_row(router_sim, api):
    joined = router_sim.device_joins(IP, MAC)
    api.path("ip", "hotspot", "user").add(name="K7P2QX", password="4839")
    tuple(api("/ip/hotspot/active/login", user="K7P2QX", password="4839", ip=IP,
              **{"mac-address": MAC}))
    (host,) = router_sim.rows("/ip/hotspot/host")
    assert host[".id"] == joined[".id"] and host["authorized"] == "true"


def test_joining_again_changes_nothing_and_a_reused_ip_belongs_to_the_new_device(router_sim):
    first = router_sim.device_joins(IP, MAC)
    assert router_sim.device_joins(IP, MAC) == first
    router_sim.device_joins(IP, OTHER_MAC)
    assert [(h["address"], h["mac-address"]) for h in router_sim.rows("/ip/hotspot/host")] \
        == [(IP, OTHER_MAC)]


def test_a_leaving_device_takes_its_host_row_and_its_session(router_sim, api):
    router_sim.device_joins(IP, MAC)
    router_sim.device_joins(OTHER_IP, OTHER_MAC)
    api.path("ip", "hotspot", "user").add(name="K7P2QX", password="4839")
    tuple(api("/ip/hotspot/active/login", user="K7P2QX", password="4839", ip=IP,
              **{"mac-address": MAC}))
    assert router_sim.device_leaves(MAC.lower()) == 1
    assert hosts_at(api, IP) == () and tuple(api.path("ip", "hotspot", "active")) == ()
    assert router_sim.device_leaves(OTHER_IP) == 1
    assert router_sim.device_leaves(OTHER_IP) == 0 and router_sim.rows("/ip/hotspot/host") == []


@pytest.mark.parametrize("ip, mac", [
    ("10.5.50", MAC), ("fe80::1", MAC), (IP, "AA:BB:CC:DD:EE"), (IP, "AA:BB-CC:DD:EE:01"),
    (IP, "not a mac"),
])
def test_malformed_addresses_are_refused(router_sim, ip, mac):
    with pytest.raises(ValueError):
        router_sim.device_joins(ip, mac)
    assert router_sim.rows("/ip/hotspot/host") == []


def test_no_hotspot_no_host():
    with RouterSim(factory_defaults=True) as sim:
        with pytest.raises(NoHotspotServer):
            sim.device_joins(IP, MAC)


def test_a_reboot_forgets_the_hosts(router_sim, api):
    router_sim.device_joins(IP, MAC)
    router_sim.reboot()
    with pytest.raises((ConnectionClosed, ConnectionError)):
        hosts_at(api, IP)
    assert router_sim.rows("/ip/hotspot/host") == []


def test_a_returning_phone_with_a_mac_cookie_is_let_in_without_the_portal(router_sim, api):
    """login-by has mac-cookie: the login made a cookie; the same MAC joining again is online."""
    api.path("ip", "hotspot", "user").add(name="K1", password="K1", **{"limit-uptime": "1h"})
    router_sim.device_joins("10.5.50.30", "AA:BB:CC:00:00:30")
    tuple(api("/ip/hotspot/active/login", user="K1", password="K1", ip="10.5.50.30",
              **{"mac-address": "AA:BB:CC:00:00:30"}))
    cookie = router_sim.rows("/ip/hotspot/cookie")[0]
    assert (cookie["user"], cookie["mac-address"], cookie["mac-cookie"]) == (
        "K1", "AA:BB:CC:00:00:30", "true")
    router_sim.device_leaves("AA:BB:CC:00:00:30")
    assert router_sim.rows("/ip/hotspot/active") == []
    router_sim.device_joins("10.5.50.31", "AA:BB:CC:00:00:30")  # a new lease, the same phone
    session = router_sim.rows("/ip/hotspot/active")[0]
    assert (session["user"], session["address"], session["login-by"]) == (
        "K1", "10.5.50.31", "mac-cookie")
    assert router_sim.rows("/ip/hotspot/host")[0]["authorized"] == "true"
    # another phone gets nothing from K1's cookie
    router_sim.device_joins("10.5.50.32", "AA:BB:CC:00:00:32")
    assert [s["address"] for s in router_sim.rows("/ip/hotspot/active")] == ["10.5.50.31"]


def test_without_mac_cookie_in_login_by_no_cookie_and_no_way_back(router_sim, api):
    profiles = api.path("ip", "hotspot", "profile")
    pid = [row[".id"] for row in profiles if row["name"] == "hsprof1"][0]
    profiles.update(**{".id": pid, "login-by": "http-chap,cookie"})
    api.path("ip", "hotspot", "user").add(name="K2", password="K2")
    router_sim.device_joins("10.5.50.40", "AA:BB:CC:00:00:40")
    tuple(api("/ip/hotspot/active/login", user="K2", password="K2", ip="10.5.50.40",
              **{"mac-address": "AA:BB:CC:00:00:40"}))
    assert router_sim.rows("/ip/hotspot/cookie") == []
    router_sim.device_leaves("AA:BB:CC:00:00:40")
    router_sim.device_joins("10.5.50.40", "AA:BB:CC:00:00:40")
    assert router_sim.rows("/ip/hotspot/active") == []


# --- limits and rates (data caps, fair use) ----------------------------------------------

def _login(api, user: str, ip: str = IP, mac: str = MAC) -> None:
    tuple(api("/ip/hotspot/active/login", user=user, password="pw", ip=ip,
              **{"mac-address": mac}))


def _add_user(api, name: str, profile: str = "default", **limits) -> None:
    api.path("ip", "hotspot", "user").add(name=name, password="pw", profile=profile, **limits)


def test_a_data_cap_ends_the_session_at_once_and_refuses_the_next_login(router_sim, api):
    router_sim.device_joins(IP, MAC)
    _add_user(api, "CAP100", **{"limit-bytes-total": str(100_000_000)})
    _login(api, "CAP100")
    router_sim.add_traffic("CAP100", 10_000_000, 60_000_000)
    assert [row["bytes-out"] for row in router_sim.rows("/ip/hotspot/active")] == ["60000000"]
    router_sim.add_traffic(MAC, 5_000_000, 25_000_000)  # 100 MB in all: the router cuts it
    assert router_sim.rows("/ip/hotspot/active") == []
    user = router_sim.rows("/ip/hotspot/user")[0]
    assert (user["bytes-in"], user["bytes-out"]) == ("15000000", "85000000")
    with pytest.raises(librouteros.exceptions.TrapError) as refused:
        _login(api, "CAP100")
    assert str(refused.value) == "user CAP100 has reached traffic limit"


def test_limit_bytes_total_zero_is_no_limit_and_disabled_users_cannot_log_in(router_sim, api):
    router_sim.device_joins(IP, MAC)
    _add_user(api, "NOCAP", **{"limit-bytes-total": "0"})
    _login(api, "NOCAP")
    router_sim.add_traffic("NOCAP", 5_000_000_000, 5_000_000_000)
    assert [row["user"] for row in router_sim.rows("/ip/hotspot/active")] == ["NOCAP"]
    _add_user(api, "OFF", disabled="yes")
    router_sim.device_joins(OTHER_IP, OTHER_MAC)
    with pytest.raises(librouteros.exceptions.TrapError) as refused:
        _login(api, "OFF", OTHER_IP, OTHER_MAC)
    assert str(refused.value) == "invalid username or password"


def test_limit_uptime_ends_the_session_when_reached(router_sim, api):
    router_sim.device_joins(IP, MAC)
    _add_user(api, "HOUR", **{"limit-uptime": "1h"})
    _login(api, "HOUR")
    router_sim.advance(3599)
    assert len(router_sim.rows("/ip/hotspot/active")) == 1
    router_sim.advance(1)
    assert router_sim.rows("/ip/hotspot/active") == []
    with pytest.raises(librouteros.exceptions.TrapError) as refused:
        _login(api, "HOUR")
    assert str(refused.value) == "user HOUR has reached uptime limit"


def test_the_rate_is_fixed_at_login_until_the_next_login(router_sim, api):
    profiles = api.path("ip", "hotspot", "user", "profile")
    profiles.add(name="fast", **{"rate-limit": "2M/5M"})
    profiles.add(name="slow", **{"rate-limit": "256k/256k"})
    router_sim.device_joins(IP, MAC)
    _add_user(api, "RATE", profile="fast")
    _login(api, "RATE")
    queues = router_sim.rows("/queue/simple")
    assert [(q["name"], q["target"], q["max-limit"], q["dynamic"]) for q in queues] == [
        ("<hotspot-RATE>", f"{IP}/32", "2M/5M", "true")]
    user_id = router_sim.rows("/ip/hotspot/user")[0][".id"]
    api.path("ip", "hotspot", "user").update(**{".id": user_id, "profile": "slow"})
    assert router_sim.rows("/queue/simple")[0]["max-limit"] == "2M/5M"  # still the old rate
    session = router_sim.rows("/ip/hotspot/active")[0]
    api.path("ip", "hotspot", "active").remove(session[".id"])
    assert router_sim.rows("/queue/simple") == []  # the queue goes with the session
    _login(api, "RATE")
    assert [q["max-limit"] for q in router_sim.rows("/queue/simple")] == ["256k/256k"]
