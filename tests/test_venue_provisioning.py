"""The site's RouterOS scripts (linted by routeros-lsp), the plan against the emulator,
and the verdicts on routers that cannot take Kibanda."""
from __future__ import annotations

import gzip
import json
import subprocess
import sys
from importlib import resources

import pytest

from portal.errors import ValidationError
from portal.routeros import RouterGateway
from portal.routeros.script import parse
from portal.venue import provisioning
from portal.venue.provisioning import RouterFacts, SiteSpec

RB5009 = RouterFacts("7.16 (stable)", 7, 16, "RB5009UG+S+", "arm64", 700 * 2**20, 2**30,
                     ["ether1", "ether2", "ether3"])


def spec(**changes) -> SiteSpec:
    values = dict(site_name='Mama "Njeri" Cafe $1', hotspot_ports=["ether2", "ether3"],
                  portal_url="http://10.5.50.2:8080", appliance="10.5.50.2",
                  api_password="s3cret$x\"y")
    values.update(changes)
    return SiteSpec(**values)


# --- the scripts pass routeros-lsp ------------------------------------------------------------

def _argument_names(*names: str) -> dict:
    return {name: {"t": "string"} for name in names}


def _menu(commands: dict[str, tuple[str, ...]]) -> dict:
    return {"c": {verb: {"k": 1, "a": _argument_names(*args)} for verb, args in commands.items()}}


@pytest.fixture(scope="module")
def schema(tmp_path_factory):
    """routeros-lsp's bundled database (a 7.21 CHR without extra packages) plus what it
    lacks and the scripts use: the ``container`` package's menus (MikroTik's Container
    manual; reference sheet section 7) and RouterOS 6's NTP client ``server-dns-names``."""
    bundled = resources.files("routeros_lsp") / "data" / "routeros-7.21.4.json.gz"
    data = json.loads(gzip.decompress(bundled.read_bytes()))
    root = data["root"]["c"]
    common = ("comment", "disabled", "name")
    root["interface"]["c"]["veth"] = _menu({
        "add": ("name", "address", "gateway", "gateway6", *common), "print": ()})
    root["container"] = _menu({
        "add": ("file", "remote-image", "interface", "root-dir", "mounts", "mountlists",
                "envlist", "envlists", "env", "mount", "memory-high", "memory-max", "ram-high",
                "start-on-boot", "logging", "cmd", "entrypoint", "hostname", "dns", *common),
        "start": ("numbers",), "stop": ("numbers",), "print": (), "find": ("where",)})
    for verb in ("start", "stop"):
        root["container"]["c"][verb]["u"] = 1  # takes the item: /container start [find ...]
    root["container"]["c"].update({
        "config": _menu({"set": ("tmpdir", "registry-url", "ram-high", "memory-high")}),
        "mounts": _menu({"add": ("name", "list", "src", "dst", *common)}),
        "envs": _menu({"add": ("name", "list", "key", "value", *common)}),
    })
    ntp_set = root["system"]["c"]["ntp"]["c"]["client"]["c"]["set"]["a"]
    ntp_set["server-dns-names"] = {"t": "string"}  # RouterOS 6.x only
    path = tmp_path_factory.mktemp("schema") / "routeros-kibanda.json"
    path.write_text(json.dumps(data))
    return path


def lint(tmp_path, schema, name: str, text: str) -> None:
    script = tmp_path / name
    script.write_text(text)
    result = subprocess.run([sys.executable, "-m", "routeros_lsp", "check", "--strict",
                             "--schema", str(schema), str(script)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("facts", [
    RB5009,
    RouterFacts("6.49.10 (long-term)", 6, 49, "hAP ac lite", "mipsbe", 30 * 2**20, 64 * 2**20,
                ["ether1", "ether2", "ether3"]),
], ids=["v7", "v6.49"])
def test_the_site_script_passes_routeros_lsp(tmp_path, schema, facts):
    text = provisioning.site_script(spec(), facts)
    lint(tmp_path, schema, "site.rsc", text)
    # what a technician imports is what the API is sent: every line parses as a command
    commands = parse(text)
    profile = [c for c in commands if c.menu == "/ip/hotspot/profile"][0]
    assert profile.attrs["login-by"] == "http-chap,http-pap,cookie,mac-cookie"
    option = [c for c in commands if c.menu == "/ip/dhcp-server/option"][0]
    assert (option.attrs["code"], option.attrs["value"]) == (
        "114", "'http://10.5.50.2:8080/api/captive'")
    user = [c for c in commands if c.menu == "/user"][0]
    assert user.attrs["password"] == 's3cret$x"y' and user.attrs["address"] == "10.5.50.2/32"
    ntp = [c for c in commands if c.menu == "/system/ntp/client"][0]
    assert ("servers" if facts.v7 else "server-dns-names") in ntp.attrs
    assert len([c for c in commands if c.verb == "fetch"]) == 9


@pytest.mark.parametrize("version,minor,syntax", [("7.16", 16, "envlist="),
                                                  ("7.21.1", 21, "envlists=")])
def test_the_container_script_passes_routeros_lsp(tmp_path, schema, version, minor, syntax):
    facts = RouterFacts(version, 7, minor, "RB5009UG+S+", "arm64", 700 * 2**20, 2**30, [])
    text = provisioning.container_script(spec(), facts)
    lint(tmp_path, schema, "container.rsc", text)
    assert syntax in text
    assert "memory-high=" in text and "start-on-boot=yes" in text
    assert "device-mode/update container=yes" in text  # the by-hand step, in the header
    assert "dst-port=8728,8729 action=accept place-before=0" in text


def test_an_unlintable_line_fails_the_lint(tmp_path, schema):
    with pytest.raises(AssertionError):
        lint(tmp_path, schema, "bad.rsc", "/ip hotspot profile add nmae=x\n")


# --- what the technician typed -----------------------------------------------------------------

@pytest.mark.parametrize("changes,field", [
    (dict(hotspot_ports=["ether2; /system reset"]), "--hotspot-ports"),
    (dict(hotspot_ports=["ether1"]), "internet port"),
    (dict(network="10.5.50.1/24"), "--network"),
    (dict(network="10.0.0.0/8"), "--network"),
    (dict(appliance="kibanda.local"), "--appliance-address"),
    (dict(portal_url="javascript:alert(1)"), "--portal-url"),
    (dict(site_name=" "), "--site-name"),
    (dict(site_name="Cafe\n/system reset-configuration"), "--site-name"),
    (dict(dns_name="wifi lan"), "--dns-name"),
])
def test_bad_site_values_are_refused_before_any_script(changes, field):
    with pytest.raises(ValidationError, match=field):
        spec(**changes)


# --- verdicts -------------------------------------------------------------------------------------

@pytest.mark.parametrize("facts,expected", [
    (RB5009, "yes: RB5009UG+S+"),
    (RouterFacts("7.16", 7, 16, "hAP ac2", "arm", 150 * 2**20, 256 * 2**20, []),
     "no: only 150 MB free memory"),
    (RouterFacts("6.49", 6, 49, "hAP ac lite", "mipsbe", 20 * 2**20, 64 * 2**20, []),
     "no: hAP ac lite has a mipsbe CPU"),
    (RouterFacts("7.16", 7, 16, "hEX refresh", "arm", 800 * 2**20, 2**30, []),
     "only runs arm32v5 images"),
    (RouterFacts("6.49", 6, 49, "RB4011", "arm", 800 * 2**20, 2**30, []),
     "not yet: containers need RouterOS 7"),
])
def test_container_verdicts(facts, expected):
    ok, text = provisioning.container_verdict(facts)
    assert expected in text
    assert ok == expected.startswith("yes")
    if not ok:
        assert "Raspberry Pi" in text


# --- the plan against the emulator -----------------------------------------------------------------

@pytest.mark.router(factory_defaults=True)
def test_plan_then_apply_then_nothing_left_to_plan(router_sim):
    with RouterGateway("127.0.0.1", router_sim.port, "admin", "") as gateway:
        facts = provisioning.read_facts(gateway)
        assert facts.interfaces[:5] == ["ether1", "ether2", "ether3", "ether4", "ether5"]
        script = provisioning.site_script(spec(appliance="127.0.0.1"), facts)
        changes = provisioning.plan(gateway, script, password_known=False)
        assert {c.action for c in changes} == {"add", "set", "sign"}
        assert "password=********" in [c.describe() for c in changes if c.command.menu == "/user"][0]
        provisioning.apply(gateway, changes)
        assert provisioning.plan(gateway, script, password_known=True) == []
        # a router whose user was changed by hand gets only that put back
        user = router_sim.rows("/user")
        kibanda_id = [u[".id"] for u in user if u["name"] == "kibanda"][0]
        gateway.command("/user/set", {".id": kibanda_id, "address": "0.0.0.0/0"})
        again = provisioning.plan(gateway, script, password_known=True)
        assert [(c.action, c.values) for c in again] == [("set", {"address": "127.0.0.1/32"})]
    server = router_sim.rows("/ip/hotspot")[0]
    assert (server["name"], server["interface"], server["profile"]) == (
        "hotspot1", "br-kibanda", "kibanda")
    ports = {row["interface"]: row["bridge"] for row in router_sim.rows("/interface/bridge/port")}
    assert ports == {"ether2": "br-kibanda", "ether3": "br-kibanda"}


@pytest.mark.router(factory_defaults=True)
def test_refusals_name_what_is_wrong(router_sim):
    router_sim.set_resource(free_memory=8 * 2**20)
    with RouterGateway("127.0.0.1", router_sim.port, "admin", "") as gateway:
        facts = provisioning.read_facts(gateway)
    problems = provisioning.refusals(facts, spec(hotspot_ports=["ether2", "ether9"]))
    assert any("interface ether9 does not exist" in p for p in problems)
    assert any("not enough free memory: the router has 8 MB free" in p for p in problems)
    old = RouterFacts("6.40.1", 6, 40, "RB951", "mipsbe", 2**26, 2**27, ["ether1", "ether2",
                                                                       "ether3"])
    assert provisioning.refusals(old, spec()) == [
        "RouterOS 6.40.1 is too old: Kibanda needs 6.49 or newer. Upgrade it (System > "
        "Packages > Check For Updates), then run this again."]
