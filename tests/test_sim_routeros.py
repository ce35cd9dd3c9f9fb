"""The RouterOS API emulator, driven by the real librouteros client over TCP."""
import json
import os
import socket
import subprocess
import sys
import time

import librouteros
import pytest
from librouteros.exceptions import ConnectionClosed, FatalError, TrapError
from librouteros.login import plain, token
from librouteros.query import Key

from portal.routeros.wire import SocketReader, encode_sentence
from portal.sim.routeros import RouterSim

MAC = "AA:BB:CC:DD:EE:01"
MAC2 = "AA:BB:CC:DD:EE:02"


@pytest.fixture
def sim(router_sim):
    """The RouterOS emulator (conftest's ``router_sim``) under this file's short name."""
    return router_sim


@pytest.fixture
def api(sim):
    connection = librouteros.connect("127.0.0.1", "admin", "", port=sim.port, timeout=5)
    yield connection
    connection.close()


class Raw:
    """A bare API client on apiwire, for what librouteros cannot express."""

    def __init__(self, port, login=True):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.reader = SocketReader(self.sock)
        if login:
            self.send("/login", "=name=admin", "=password=")
            assert self.read() == ["!done"]

    def send(self, *words):
        self.sock.sendall(encode_sentence(list(words)))

    def read(self):
        return self.reader.read_sentence()

    def call(self, *words):
        """Send one command and read every sentence up to and including !done."""
        self.send(*words)
        replies = []
        while True:
            sentence = self.read()
            replies.append(sentence)
            if sentence[0] in ("!done", "!fatal"):
                return replies

    def close(self):
        self.sock.close()


@pytest.fixture
def raw(sim):
    client = Raw(sim.port)
    yield client
    client.close()


def hotspot_user(api, **values):
    """Add a hotspot user and return its id."""
    return api.path("ip", "hotspot", "user").add(**values)


def login(api, user, password="", ip="10.5.50.10", mac=MAC):
    """Log a device in through /ip/hotspot/active/login."""
    return tuple(api("/ip/hotspot/active/login", user=user, password=password, ip=ip,
                     **{"mac-address": mac}))


# --- login ---------------------------------------------------------------------------


def test_plain_and_token_logins_accept_the_right_password():
    with RouterSim(user="portal", password="s3cret") as sim:
        for method in (plain, token):
            api = librouteros.connect("127.0.0.1", "portal", "s3cret", port=sim.port,
                                      timeout=5, login_method=method)
            assert tuple(api.path("system", "identity"))[0]["name"] == "MikroTik"
            api.close()


@pytest.mark.parametrize("method", [plain, token])
def test_wrong_password_is_refused_with_the_router_message(method):
    with RouterSim(password="right") as sim:
        with pytest.raises(TrapError) as caught:
            librouteros.connect("127.0.0.1", "admin", "wrong", port=sim.port, timeout=5,
                                login_method=method)
        assert caught.value.message == "invalid user name or password (6)"


def test_refuse_logins_refuses_valid_credentials(sim):
    sim.refuse_logins = True
    with pytest.raises(TrapError, match=r"invalid user name or password \(6\)"):
        librouteros.connect("127.0.0.1", "admin", "", port=sim.port, timeout=5)
    sim.refuse_logins = False
    librouteros.connect("127.0.0.1", "admin", "", port=sim.port, timeout=5).close()


def test_commands_before_login_are_refused(sim):
    client = Raw(sim.port, login=False)
    try:
        replies = client.call("/ip/hotspot/user/print")
        assert replies[0][0] == "!trap" and "=message=not logged in" in replies[0]
        assert replies[-1] == ["!done"]
    finally:
        client.close()


def test_max_sessions_refuses_further_logins(sim):
    sim.max_sessions = 1
    first = librouteros.connect("127.0.0.1", "admin", "", port=sim.port, timeout=5)
    try:
        with pytest.raises(TrapError, match="too many sessions"):
            librouteros.connect("127.0.0.1", "admin", "", port=sim.port, timeout=5)
        assert tuple(first.path("ip", "service").select(Key("max-sessions")).where(
            Key("name") == "api"))[0]["max-sessions"] == 1
    finally:
        first.close()


def test_a_user_added_over_the_api_can_log_in_with_its_group_policy(api, sim):
    api.path("user", "group").add(name="hs-api", policy="api,read,write")
    api.path("user").add(name="portal", group="hs-api", password="pw")
    api.path("user").add(name="viewer", group="hs-api", password="pw", address="10.9.9.9/32")
    librouteros.connect("127.0.0.1", "portal", "pw", port=sim.port, timeout=5).close()
    with pytest.raises(TrapError):  # wrong source address
        librouteros.connect("127.0.0.1", "viewer", "pw", port=sim.port, timeout=5)
    users = {row["name"]: row for row in sim.rows("/user")}
    assert "password" not in users["portal"]  # /user passwords are never printed


# --- protocol ------------------------------------------------------------------------


def test_empty_reply_on_7_18_only():
    with RouterSim(version="7.18") as sim:
        client = Raw(sim.port)
        try:
            assert client.call("/ip/hotspot/active/print") == [["!empty"], ["!done"]]
        finally:
            client.close()
        api = librouteros.connect("127.0.0.1", "admin", "", port=sim.port, timeout=5)
        assert tuple(api.path("ip", "hotspot", "active")) == ()
        api.close()
    with RouterSim(version="7.16") as sim:
        client = Raw(sim.port)
        try:
            assert client.call("/ip/hotspot/active/print") == [["!done"]]
        finally:
            client.close()


def test_tagged_commands_are_answered_in_order_each_with_its_tag(raw):
    raw.send("/system/identity/print", ".tag=a")
    raw.send("/ip/hotspot/user/add", "=name=T1", ".tag=b")
    raw.send("/nope/print", ".tag=c")
    replies = [raw.read() for _ in range(5)]
    assert replies[0][0] == "!re" and replies[0][-1] == ".tag=a"
    assert replies[1] == ["!done", ".tag=a"]
    assert replies[2] == ["!done", "=ret=*1", ".tag=b"]
    assert replies[3] == ["!trap", "=message=no such command prefix", "=category=0", ".tag=c"]
    assert replies[4] == ["!done", ".tag=c"]
    # untagged commands get no tag back
    assert raw.call("/system/identity/print")[-1] == ["!done"]


def test_quit_answers_fatal_then_closes(raw):
    assert raw.call("/quit") == [["!fatal", "session terminated on request"]]
    with pytest.raises(ConnectionError):
        raw.read()


def test_librouteros_sees_fatal_on_quit(api):
    with pytest.raises(FatalError, match="session terminated on request"):
        tuple(api("/quit"))


def test_unknown_command_and_bad_id_traps(api):
    with pytest.raises(TrapError) as caught:
        tuple(api("/ip/hotspot/frobnicate/print"))
    assert caught.value.message == "no such command prefix"
    assert caught.value.category == 0
    with pytest.raises(TrapError, match="no such item"):
        api.path("ip", "hotspot", "user").remove("*99")


def test_values_with_equals_signs_and_empty_values_survive(api, sim):
    hotspot_user(api, name="EQ", password="", comment="a=b=c")
    row = [r for r in sim.rows("/ip/hotspot/user") if r["name"] == "EQ"][0]
    assert row["comment"] == "a=b=c" and row["password"] == ""


def test_numeric_name_stays_a_string_on_the_wire(api, raw):
    hotspot_user(api, name="123456", password="0042")
    replies = raw.call("/ip/hotspot/user/print", "?name=123456")
    assert "=name=123456" in replies[0] and "=password=0042" in replies[0]
    # librouteros casts it: the reason Kibanda always str()s names
    assert tuple(api.path("ip", "hotspot", "user"))[0]["name"] == 123456


def test_queries_and_proplist(api, raw):
    users = api.path("ip", "hotspot", "user")
    users.add(name="A", comment="x", **{"limit-uptime": "1h"})
    users.add(name="B", **{"limit-uptime": "2h"})
    users.add(name="C", disabled=True)

    def names(*query):
        replies = raw.call("/ip/hotspot/user/print", "=.proplist=name", *query)
        return [r[1].split("=", 2)[2] for r in replies if r[0] == "!re"]

    assert names() == ["A", "B", "C"]
    assert names("?comment") == ["A"]
    assert names("?-comment") == ["B", "C"]
    assert names("?=name=B") == ["B"] and names("?name=B") == ["B"]
    assert names("?>limit-uptime=1h") == ["B"]  # durations compare as time, not text
    assert names("?<limit-uptime=7200") == ["A"]
    assert names("?name=A", "?name=C", "?#|") == ["A", "C"]
    assert names("?name=A", "?name=C", "?#|!") == ["B"]
    assert names("?name=A", "?#!") == ["B", "C"]
    assert names("?disabled=yes") == ["C"]  # booleans match in either spelling
    assert names("?name=A", "?name=B", "?#1") == ["A"]  # index at word end replaces the stack
    assert names("?name=A", "?#.|") == ["A"]  # "." duplicates the top
    selected = tuple(users.select(Key("name")).where(Key("name").In("A", "B")))
    assert selected == ({"name": "A"}, {"name": "B"})
    assert raw.call("/ip/hotspot/user/print", "=count-only=")[-1] == ["!done", "=ret=3"]


def test_latency_delays_replies_like_a_slow_link(sim, raw):
    """Each reply arrives latency_ms late, but pipelined commands overlap their waits."""
    sim.latency_ms = 100
    started = time.monotonic()
    raw.call("/system/identity/print")
    assert time.monotonic() - started >= 0.1
    started = time.monotonic()
    for n in range(10):
        raw.send("/system/identity/print", f".tag={n}")
    seen = set()
    while len(seen) < 10:
        sentence = raw.read()
        if sentence[0] == "!done":
            seen.add(next(w for w in sentence if w.startswith(".tag=")))
    elapsed = time.monotonic() - started
    # ten round trips one after another would take at least 1 s
    assert 0.1 <= elapsed < 0.8
    sim.latency_ms = 0


def test_drop_after_closes_the_connection_mid_reply(sim, api):
    for name in ("D1", "D2", "D3"):
        hotspot_user(api, name=name)
    sim.drop_after(2)
    with pytest.raises((ConnectionClosed, ConnectionError)):
        tuple(api.path("ip", "hotspot", "user"))
    again = librouteros.connect("127.0.0.1", "admin", "", port=sim.port, timeout=5)
    try:  # one shot: the next connection is served in full
        assert len(tuple(again.path("ip", "hotspot", "user"))) == 3
    finally:
        again.close()


def test_command_log_counts_round_trips(sim, api):
    before = len(sim.command_log)
    tuple(api.path("system", "resource"))
    assert sim.command_log[before:] == ["/system/resource/print"]


# --- menus ---------------------------------------------------------------------------


def test_system_resource_and_identity(api):
    resource = tuple(api.path("system", "resource"))[0]
    assert resource["version"] == "7.16 (stable)"
    assert resource["board-name"] == "RB5009UG+S+"
    assert {"cpu-load", "free-memory", "total-memory", "architecture-name"} <= set(resource)
    api.path("system", "identity").update(name="Cafe Jamii")
    assert tuple(api.path("system", "identity")) == ({"name": "Cafe Jamii"},)


def test_version_6_prints_yes_no_and_uptime_as_duration():
    with RouterSim(version="6.49") as sim:
        client = Raw(sim.port)
        try:
            sim.advance(7 * 86400 + 4 * 86400 + 3600 + 16 * 60 + 55)
            replies = client.call("/system/resource/print")
            assert "=uptime=1w4d1h16m55s" in replies[0]
            assert "=version=6.49 (long-term)" in replies[0]
            client.call("/ip/hotspot/user/add", "=name=V6", "=disabled=true")
            row = client.call("/ip/hotspot/user/print", "?name=V6")[0]
            assert "=disabled=yes" in row
        finally:
            client.close()


def test_hotspot_user_add_set_remove_and_traps(api, sim):
    users = api.path("ip", "hotspot", "user")
    first = users.add(name="V7K2QX", password="4839", profile="default",
                      **{"limit-uptime": "1d2h", "comment": "batch12"})
    assert first.startswith("*")
    second = users.add(name="V7K2QY", **{"limit-uptime": "00:30:00"})
    with pytest.raises(TrapError) as caught:
        users.add(name="V7K2QX")
    assert caught.value.message == "failure: already have user with this name for this server"
    users.add(name="V7K2QX", server="hotspot1")  # unique per server only
    with pytest.raises(TrapError, match="input does not match any value of profile"):
        users.add(name="NOPROF", profile="missing")
    users.update(**{".id": first, "limit-uptime": "3600", "password": "9999"})
    rows = {r["name"] + r["server"]: r for r in sim.rows("/ip/hotspot/user")}
    assert rows["V7K2QXall"]["limit-uptime"] == "1h" and rows["V7K2QXall"]["password"] == "9999"
    assert rows["V7K2QYall"]["limit-uptime"] == "30m"
    users.remove(first, second)  # comma list
    users.remove("V7K2QX")  # a name works as .id
    assert sim.rows("/ip/hotspot/user") == []
    with pytest.raises(TrapError, match="no such item"):
        users.update(**{".id": first, "comment": "gone"})


def test_hotspot_user_reset_counters(api, sim):
    hotspot_user(api, name="RC", password="p")
    login(api, "RC", "p")
    sim.add_traffic("RC", 1000, 5000)
    sim.advance(120)
    api.path("ip", "hotspot", "active").remove(tuple(api.path("ip", "hotspot", "active"))[0][".id"])
    assert sim.rows("/ip/hotspot/user")[0]["bytes-out"] == "5000"
    tuple(api("/ip/hotspot/user/reset-counters", **{".id": "RC"}))
    row = sim.rows("/ip/hotspot/user")[0]
    assert (row["uptime"], row["bytes-in"], row["bytes-out"]) == ("0s", "0", "0")


def test_user_profiles(api, sim):
    profiles = api.path("ip", "hotspot", "user", "profile")
    pid = profiles.add(name="1h-5M", **{"rate-limit": "2M/5M", "shared-users": 2})
    with pytest.raises(TrapError, match="already exists"):
        profiles.add(name="1h-5M")
    profiles.update(**{".id": pid, "mac-cookie-timeout": "1d", "add-mac-cookie": False})
    row = [r for r in sim.rows("/ip/hotspot/user/profile") if r["name"] == "1h-5M"][0]
    assert row["rate-limit"] == "2M/5M" and row["shared-users"] == "2"
    assert row["mac-cookie-timeout"] == "1d" and row["add-mac-cookie"] == "false"
    default = [r for r in sim.rows("/ip/hotspot/user/profile") if r["name"] == "default"][0]
    assert default["shared-users"] == "1"
    profiles.remove(pid)
    assert [r["name"] for r in sim.rows("/ip/hotspot/user/profile")] == ["default"]


MENUS = [
    ("/ip/hotspot", {"name": "hs2", "interface": "ether5"}, {"idle-timeout": "10m"}),
    ("/ip/hotspot/profile", {"name": "hsprof2", "dns-name": "x.lan"}, {"login-by": "http-pap"}),
    ("/ip/hotspot/walled-garden", {"dst-host": "*.safaricom.co.ke"}, {"action": "deny"}),
    ("/ip/hotspot/walled-garden/ip", {"dst-address": "10.5.50.2"}, {"action": "reject"}),
    ("/user/group", {"name": "hs-api", "policy": "api,read,write"}, {"policy": "api,read"}),
    ("/user", {"name": "portal", "group": "read", "password": "x"}, {"address": "10.5.50.2/32"}),
    ("/interface/bridge", {"name": "br-hs"}, {"comment": "hotspot"}),
    ("/interface/bridge/port", {"bridge": "bridge-hotspot", "interface": "ether1"}, {"pvid": "2"}),
    ("/ip/address", {"address": "192.168.88.1/24", "interface": "ether1"}, {"comment": "lan"}),
    ("/ip/pool", {"name": "p2", "ranges": "10.0.0.2-10.0.0.9"}, {"ranges": "10.0.0.2-10.0.0.99"}),
    ("/ip/dhcp-server", {"name": "d2", "interface": "ether1"}, {"lease-time": "1h"}),
    ("/ip/dhcp-server/network", {"address": "10.0.0.0/24"}, {"gateway": "10.0.0.1"}),
    ("/ip/firewall/nat", {"chain": "dstnat", "action": "redirect"}, {"to-ports": "80"}),
    ("/ip/firewall/filter", {"chain": "input", "action": "drop"}, {"protocol": "tcp"}),
    ("/file", {"name": "note.txt", "contents": "hi"}, {"contents": "hello"}),
]


@pytest.mark.parametrize("path,added,changed", MENUS, ids=[m[0] for m in MENUS])
def test_menu_add_set_print_remove(api, sim, path, added, changed):
    menu = api.path(*path.strip("/").split("/"))
    before = len(sim.rows(path))
    new_id = menu.add(**added)
    menu.update(**{".id": new_id, **changed})
    row = [r for r in sim.rows(path) if r[".id"] == new_id][0]
    for name, value in {**added, **changed}.items():
        if name != "password":
            assert row[name] == value
    assert len(tuple(menu)) == before + 1
    menu.remove(new_id)
    assert len(sim.rows(path)) == before


def test_singletons_and_services(api, sim):
    tuple(api("/ip/dns/set", servers="1.1.1.1,8.8.8.8", **{"allow-remote-requests": "yes"}))
    assert sim.rows("/ip/dns")[0]["allow-remote-requests"] == "true"
    tuple(api("/system/clock/set", **{"time-zone-name": "Africa/Nairobi", "time-zone-autodetect": "no"}))
    clock = sim.rows("/system/clock")[0]
    assert clock["time-zone-name"] == "Africa/Nairobi" and len(clock["date"]) == 10
    tuple(api("/system/ntp/client/set", enabled="yes", servers="pool.ntp.org"))
    assert sim.rows("/system/ntp/client")[0]["servers"] == "pool.ntp.org"
    services = api.path("ip", "service")
    names = {r["name"] for r in sim.rows("/ip/service")}
    assert {"api", "api-ssl", "telnet", "ftp", "www", "ssh", "winbox"} <= names
    services.update(**{".id": "telnet", "disabled": True})
    services.update(**{".id": "api", "address": "10.5.50.2/32"})
    rows = {r["name"]: r for r in sim.rows("/ip/service")}
    assert rows["telnet"]["disabled"] == "true" and rows["api"]["address"] == "10.5.50.2/32"
    assert rows["api"]["port"] == "8728" and rows["api"]["max-sessions"] == "20"
    with pytest.raises(TrapError):  # services cannot be added
        services.add(name="gopher")


def test_v6_ntp_uses_primary_ntp():
    with RouterSim(version="6.49") as sim:
        api = librouteros.connect("127.0.0.1", "admin", "", port=sim.port, timeout=5)
        try:
            tuple(api("/system/ntp/client/set", enabled="yes", **{"primary-ntp": "1.2.3.4"}))
            with pytest.raises(TrapError):
                tuple(api("/system/ntp/client/set", servers="pool.ntp.org"))
        finally:
            api.close()
        assert sim.rows("/system/ntp/client")[0]["primary-ntp"] == "1.2.3.4"


def test_default_and_factory_state():
    with RouterSim() as sim:
        assert [r["name"] for r in sim.rows("/ip/hotspot")] == ["hotspot1"]
        profile = [r for r in sim.rows("/ip/hotspot/profile") if r["name"] == "hsprof1"][0]
        assert profile["dns-name"] == "wifi.kibanda.lan" and profile["hotspot-address"] == "10.5.50.1"
        assert "bridge-hotspot" in [r["name"] for r in sim.rows("/interface")]
    with RouterSim(factory_defaults=True) as sim:
        assert [r["name"] for r in sim.rows("/interface")] == [f"ether{i}" for i in range(1, 6)]
        assert sim.rows("/ip/hotspot") == [] and sim.rows("/interface/bridge") == []


def test_bridge_adds_an_interface(api, sim):
    api.path("interface", "bridge").add(name="br-hs")
    assert "br-hs" in [r["name"] for r in sim.rows("/interface")]
    api.path("interface", "bridge").remove("br-hs")
    assert "br-hs" not in [r["name"] for r in sim.rows("/interface")]


def test_walled_garden_action_is_checked(api):
    with pytest.raises(TrapError, match="input does not match any value of action"):
        api.path("ip", "hotspot", "walled-garden", "ip").add(**{"dst-address": "1.1.1.1", "action": "maybe"})


def test_get_enable_disable(api, sim):
    uid = hotspot_user(api, name="G1", password="pw", **{"limit-uptime": "2h"})
    assert tuple(api("/ip/hotspot/user/get", **{".id": uid, "value-name": "limit-uptime"})) == (
        {"ret": "2h"},)
    tuple(api("/ip/hotspot/user/disable", **{".id": uid}))
    assert sim.rows("/ip/hotspot/user")[0]["disabled"] == "true"
    with pytest.raises(TrapError, match="invalid username or password"):
        login(api, "G1", "pw")
    tuple(api("/ip/hotspot/user/enable", **{".id": uid}))
    login(api, "G1", "pw")
    assert len(sim.rows("/ip/hotspot/active")) == 1


def test_removing_the_host_logs_the_device_out(api, sim):
    hotspot_user(api, name="H1", password="pw")
    login(api, "H1", "pw")
    host = tuple(api.path("ip", "hotspot", "host"))[0][".id"]
    api.path("ip", "hotspot", "host").remove(host)
    assert sim.rows("/ip/hotspot/active") == [] and sim.rows("/ip/hotspot/host") == []
    cookie = tuple(api.path("ip", "hotspot", "cookie"))[0][".id"]
    api.path("ip", "hotspot", "cookie").remove(cookie)
    assert sim.rows("/ip/hotspot/cookie") == []


def test_traffic_limit_ends_the_session(api, sim):
    hotspot_user(api, name="B1", password="pw", **{"limit-bytes-total": 10000})
    login(api, "B1", "pw")
    sim.add_traffic("B1", 4000, 4000)
    assert len(sim.rows("/ip/hotspot/active")) == 1
    sim.add_traffic("B1", 1000, 1000)
    assert sim.rows("/ip/hotspot/active") == []
    with pytest.raises(TrapError, match="user B1 has reached traffic limit"):
        login(api, "B1", "pw")


def test_real_clock_ages_sessions():
    with RouterSim(clock="real") as sim:
        api = librouteros.connect("127.0.0.1", "admin", "", port=sim.port, timeout=5)
        try:
            hotspot_user(api, name="RT", password="pw")
            login(api, "RT", "pw")
        finally:
            api.close()
        deadline = time.monotonic() + 5
        while sim.rows("/ip/hotspot/active")[0]["uptime"] == "0s":
            assert time.monotonic() < deadline, "the real clock never ticked"
            time.sleep(0.1)


def test_system_reboot_command(sim, api):
    uid = hotspot_user(api, name="SR")
    tuple(api("/system/reboot"))
    with pytest.raises((ConnectionClosed, ConnectionError)):
        tuple(api.path("system", "identity"))
    assert sim.rows("/ip/hotspot/user")[0][".id"] != uid


@pytest.fixture
def web_file():
    """A small HTTP server of our own serving one known file at /hotspot-html/login.html."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    body = "<html>Karibu $(mac) \u2014 caf\u00e9</html>\n".encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            found = self.path == "/hotspot-html/login.html"
            self.send_response(200 if found else 404)
            self.send_header("Content-Length", str(len(body) if found else 0))
            self.end_headers()
            if found:
                self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", body
    server.shutdown()
    server.server_close()


def test_fetch_downloads_the_file_and_stores_its_bytes(api, sim, web_file):
    base, body = web_file
    url = f"{base}/hotspot-html/login.html"
    replies = tuple(api("/tool/fetch", url=url, **{"dst-path": "kibanda/login.html",
                                                   "mode": "http"}))
    assert replies[0]["status"] == "finished"
    assert sim.fetched == [{"url": url, "dst-path": "kibanda/login.html", "mode": "http"}]
    files = {r["name"]: r for r in sim.rows("/file")}
    assert files["kibanda"]["type"] == "directory"
    assert files["kibanda/login.html"]["size"] == str(len(body))
    assert sim.file_bytes("kibanda/login.html") == body


def test_fetch_of_a_missing_file_or_a_closed_port_is_a_trap_and_stores_nothing(api, sim,
                                                                               web_file):
    base, _ = web_file
    with pytest.raises(TrapError, match="404"):
        tuple(api("/tool/fetch", url=f"{base}/hotspot-html/nothing.html",
                  **{"dst-path": "kibanda/nothing.html"}))
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    with pytest.raises(TrapError, match="could not connect"):
        tuple(api("/tool/fetch", url=f"http://127.0.0.1:{port}/x.html", **{"dst-path": "x.html"}))
    assert [r for r in sim.rows("/file") if r["type"] != "directory"] == []


def test_system_resource_reports_what_the_test_sets(api, sim):
    sim.set_resource(architecture_name="mipsbe", free_memory=20_000_000, board_name="hAP ac lite")
    row = tuple(api.path("system", "resource"))[0]
    assert (row["architecture-name"], row["free-memory"], row["board-name"]) == (
        "mipsbe", 20_000_000, "hAP ac lite")
    assert row["total-memory"] == 1073741824
    with pytest.raises(ValueError):
        sim.set_resource(colour="red")


def test_a_disabled_api_service_closes_new_connections(sim, api):
    services = api.path("ip", "service")
    api_id = [row[".id"] for row in services if row["name"] == "api"][0]
    services.update(**{".id": api_id, "disabled": True})
    with pytest.raises((ConnectionClosed, ConnectionError, OSError)):
        librouteros.connect("127.0.0.1", "admin", "", port=sim.port, timeout=2)


def test_certificate_sign_gives_it_a_key_and_trust(api, sim):
    certs = api.path("certificate")
    certs.add(name="kibanda-api", **{"common-name": "10.5.50.1", "days-valid": 3650})
    tuple(api("/certificate/sign", **{".id": "kibanda-api"}))
    row = sim.rows("/certificate")[0]
    assert row["private-key"] == "true" and row["trusted"] == "true"


# --- hotspot behaviour ---------------------------------------------------------------


def test_active_login_creates_session_host_and_cookie(api, sim):
    hotspot_user(api, name="V1", password="pw", **{"limit-uptime": "1h"})
    assert login(api, "V1", "pw") == ()
    active = sim.rows("/ip/hotspot/active")
    assert len(active) == 1
    session = active[0]
    assert (session["user"], session["address"], session["mac-address"]) == ("V1", "10.5.50.10", MAC)
    assert session["server"] == "hotspot1" and session["uptime"] == "0s"
    assert session["session-time-left"] == "1h"
    assert session["bytes-in"] == "0" and session["bytes-out"] == "0"
    host = sim.rows("/ip/hotspot/host")[0]
    assert host["mac-address"] == MAC and host["authorized"] == "true"
    assert sim.rows("/ip/hotspot/cookie")[0]["user"] == "V1"
    # the same device logging in again as the same user changes nothing
    login(api, "V1", "pw")
    assert sim.rows("/ip/hotspot/active") == active


def test_a_device_joining_is_listed_as_a_host_not_yet_authorized(api, sim):
    sim.device_joins("10.5.50.10", MAC.lower())
    sim.device_joins("10.5.50.10", MAC)  # the same lease again: still one host
    hosts = tuple(api.path("ip", "hotspot", "host").select(
        "mac-address", "address", "authorized").where(Key("address") == "10.5.50.10"))
    assert hosts == ({"mac-address": MAC, "address": "10.5.50.10", "authorized": False},)
    host = sim.rows("/ip/hotspot/host")[0]
    assert (host["to-address"], host["server"], host["found-by"]) == (
        "10.5.50.10", "hotspot1", "DHCP 10.5.50.10")
    hotspot_user(api, name="J1", password="pw")
    login(api, "J1", "pw")
    assert [h["authorized"] for h in sim.rows("/ip/hotspot/host")] == ["true"]


def test_login_refusals(api):
    hotspot_user(api, name="V2", password="pw")
    hotspot_user(api, name="OFF", password="pw", disabled=True)
    with pytest.raises(TrapError, match="invalid username or password"):
        login(api, "V2", "nope")
    with pytest.raises(TrapError, match="invalid username or password"):
        login(api, "NOBODY", "pw")
    with pytest.raises(TrapError, match="invalid username or password"):
        login(api, "OFF", "pw")


def test_shared_users_limits_devices(api, sim):
    hotspot_user(api, name="S1", password="pw")
    login(api, "S1", "pw", ip="10.5.50.11", mac=MAC)
    with pytest.raises(TrapError, match="no more sessions are allowed for user S1"):
        login(api, "S1", "pw", ip="10.5.50.12", mac=MAC2)
    default = tuple(api.path("ip", "hotspot", "user", "profile"))[0][".id"]
    api.path("ip", "hotspot", "user", "profile").update(**{".id": default, "shared-users": 2})
    login(api, "S1", "pw", ip="10.5.50.12", mac=MAC2)
    assert len(sim.rows("/ip/hotspot/active")) == 2


def test_limit_uptime_ends_the_session_and_refuses_new_logins(api, sim):
    hotspot_user(api, name="L1", password="pw", **{"limit-uptime": "30m"})
    login(api, "L1", "pw")
    sim.advance(600)
    assert sim.rows("/ip/hotspot/active")[0]["session-time-left"] == "20m"
    sim.advance(3600)
    assert sim.rows("/ip/hotspot/active") == []
    user = sim.rows("/ip/hotspot/user")[0]
    assert user["uptime"] == "30m"  # capped at the limit
    assert sim.rows("/ip/hotspot/host")[0]["authorized"] == "false"
    with pytest.raises(TrapError, match="user L1 has reached uptime limit"):
        login(api, "L1", "pw")


def test_counters_grow_only_at_logout(api, sim):
    hotspot_user(api, name="C1", password="pw")
    login(api, "C1", "pw")
    assert sim.add_traffic(MAC, 2000, 30000) == 1
    sim.advance(300)
    session = sim.rows("/ip/hotspot/active")[0]
    assert (session["bytes-in"], session["bytes-out"], session["uptime"]) == ("2000", "30000", "5m")
    user = sim.rows("/ip/hotspot/user")[0]
    assert (user["bytes-in"], user["bytes-out"], user["uptime"]) == ("0", "0", "0s")
    api.path("ip", "hotspot", "active").remove(session[".id"])
    user = sim.rows("/ip/hotspot/user")[0]
    assert (user["bytes-in"], user["bytes-out"], user["uptime"]) == ("2000", "30000", "5m")


def test_reboot_renumbers_ids_and_ends_sessions(sim):
    api = librouteros.connect("127.0.0.1", "admin", "", port=sim.port, timeout=5)
    old_id = hotspot_user(api, name="R1", password="pw")
    login(api, "R1", "pw")
    sim.advance(60)
    sim.reboot()
    with pytest.raises((ConnectionClosed, ConnectionError)):
        tuple(api.path("system", "identity"))
    api.close()
    api = librouteros.connect("127.0.0.1", "admin", "", port=sim.port, timeout=5)
    try:
        users = tuple(api.path("ip", "hotspot", "user"))
        assert users[0]["name"] == "R1" and users[0][".id"] != old_id
        assert users[0]["uptime"] == "1m"
        assert tuple(api.path("ip", "hotspot", "active")) == ()
        with pytest.raises(TrapError, match="no such item"):
            api.path("ip", "hotspot", "user").remove(old_id)
        assert tuple(api.path("system", "resource"))[0]["uptime"] == "0s"
    finally:
        api.close()


def test_factory_reset_drops_the_hotspot(sim, api):
    hotspot_user(api, name="F1")
    sim.factory_reset()
    assert sim.rows("/ip/hotspot/user") == [] and sim.rows("/ip/hotspot") == []
    librouteros.connect("127.0.0.1", "admin", "", port=sim.port, timeout=5).close()


def test_state_file_survives_a_restart(tmp_path):
    state = tmp_path / "router.json"
    with RouterSim(state_file=state) as sim:
        api = librouteros.connect("127.0.0.1", "admin", "", port=sim.port, timeout=5)
        hotspot_user(api, name="KEEP", password="pw")
        api.close()
    assert "KEEP" in state.read_text()
    with RouterSim(state_file=state) as sim:
        assert [r["name"] for r in sim.rows("/ip/hotspot/user")] == ["KEEP"]
        api = librouteros.connect("127.0.0.1", "admin", "", port=sim.port, timeout=5)
        assert hotspot_user(api, name="NEXT") == "*2"  # ids keep increasing
        api.close()


def test_cli_serves_until_sigterm(tmp_path):
    state = tmp_path / "cli.json"
    code = "from portal.cli.sim import router_command; router_command()"
    process = subprocess.Popen(
        [sys.executable, "-c", code, "--port", "0", "--password", "pw", "--state", str(state)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    try:
        banner = process.stdout.readline()
        port = int(banner.split("127.0.0.1:")[1].split()[0])
        api = librouteros.connect("127.0.0.1", "admin", "pw", port=port, timeout=5)
        hotspot_user(api, name="CLI")
        api.close()
        process.terminate()
        out, err = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
        process.stdout.close()
        process.stderr.close()
    assert process.returncode == 0, err
    saved = json.loads(state.read_text())
    assert [r["name"] for r in saved["tables"]["/ip/hotspot/user"]] == ["CLI"]
