"""``kibanda provision`` against the RouterOS emulator from factory defaults: the hotspot
works afterwards, a second run changes nothing, and every failure says what is wrong."""
from __future__ import annotations

import pytest
import requests
from helpers import free_port

from portal.config import load_settings, read_config_file
from portal.routeros import RouterGateway
from portal.venue import qr
from portal.venue.hotspot_files import HOTSPOT_FILES, render_file

ADMIN_PASSWORD = "ruta-admin"
pytestmark = pytest.mark.router(factory_defaults=True, password=ADMIN_PASSWORD)


@pytest.fixture
def portal_url():
    """A free port on this machine: provision serves the pages there while the router fetches."""
    return f"http://127.0.0.1:{free_port()}"


def provision(kibanda, router_sim, portal_url, *extra, password=ADMIN_PASSWORD, port=None):
    return kibanda("provision", "--router", f"127.0.0.1:{port or router_sim.port}",
                   "--user", "admin", "--password", password, "--site-name", "Mama Njeri Cafe",
                   "--hotspot-ports", "ether2,ether3", "--portal-url", portal_url, *extra)


def test_a_factory_router_becomes_a_kibanda_hotspot_and_a_second_run_changes_nothing(
        kibanda, router_sim, portal_url, tmp_path):
    result = provision(kibanda, router_sim, portal_url, "--yes", "--export",
                       str(tmp_path / "site.rsc"))
    assert result.exit_code == 0, result.output
    assert "RouterOS 7.16 (stable), RB5009UG+S+, arm64" in result.output
    assert "add  /ip hotspot name=hotspot1 interface=br-kibanda" in result.output
    assert "hotspot files: 9 on the router, sizes match the portal's" in result.output
    assert "container on this router: yes" in result.output
    # the router now runs the hotspot the way Kibanda needs it
    profile = [p for p in router_sim.rows("/ip/hotspot/profile") if p["name"] == "kibanda"][0]
    assert profile["login-by"] == "http-chap,http-pap,cookie,mac-cookie"
    assert profile["html-directory"] == "kibanda"
    option = router_sim.rows("/ip/dhcp-server/option")[0]
    assert option["value"] == f"'{portal_url}/api/captive'"
    services = {s["name"]: s for s in router_sim.rows("/ip/service")}
    assert services["telnet"]["disabled"] == "true" and services["api"]["address"] == "127.0.0.1/32"
    host = router_sim.device_joins("10.5.50.77", "AA:BB:CC:00:00:77")
    assert host["server"] == "hotspot1"
    # the pages the router holds are the site's, byte for byte
    settings = read_config_file(tmp_path / "site")
    for name in HOTSPOT_FILES:
        expected = render_file(name, portal_url=portal_url, site_name="Mama Njeri Cafe",
                               primary_color="#0a7d4f")
        assert router_sim.file_bytes(f"kibanda/{name}") == expected, name
    # the API user's password: generated, stored encrypted, and it logs in from here only
    assert settings["ROUTER_USER"] == "kibanda"
    assert str(settings["ROUTER_PASSWORD"]).startswith("fernet:")
    assert ADMIN_PASSWORD not in (tmp_path / "site" / "kibanda.toml").read_text()
    assert "password=********" in result.output
    exported = (tmp_path / "site.rsc").read_text()
    assert (tmp_path / "site.rsc").stat().st_mode & 0o077 == 0
    sheet = (tmp_path / "site" / "site-sheet.html").read_text()
    # The owner's QR code is the admin address (venue/qr.py is checked against qrcode).
    assert f"{portal_url}/admin/" in sheet and qr.data_url(f"{portal_url}/admin/") in sheet
    assert "WiFi name (SSID) / <i>Jina la WiFi (SSID)</i>" in sheet

    again = provision(kibanda, router_sim, portal_url)  # no --yes: nothing to confirm
    assert again.exit_code == 0, again.output
    assert "nothing to change: the router already has everything Kibanda needs" in again.output
    assert "plan:" not in again.output
    stored = load_settings(tmp_path / "site")
    assert stored["ROUTER_USER"] == "kibanda" and stored["ROUTER_HOST"] == "127.0.0.1"
    with RouterGateway("127.0.0.1", router_sim.port, "kibanda", stored["ROUTER_PASSWORD"]) as gw:
        assert gw.version() == "7.16 (stable)"  # the same password as after the first run
    assert "password=" in exported and "kibanda-api" in exported


def test_the_technician_is_asked_and_no_means_nothing_changes(kibanda, router_sim, portal_url,
                                                              runner, tmp_path):
    from portal.cli import main

    before = router_sim.rows("/ip/hotspot")
    result = runner.invoke(main, ["--instance", str(tmp_path / "site"), "provision",
                                  "--router", f"127.0.0.1:{router_sim.port}", "--user", "admin",
                                  "--password", ADMIN_PASSWORD, "--site-name", "Kijiji",
                                  "--hotspot-ports", "ether2", "--portal-url", portal_url],
                           input="n\n")
    assert result.exit_code == 0, result.output
    assert "apply this plan to the router?" in result.output
    assert "not applied; nothing changed on the router" in result.output
    assert router_sim.rows("/ip/hotspot") == before == []


def test_packages_get_their_profiles(kibanda, router_sim, portal_url):
    assert kibanda("packages", "add", "--name", "1 hour", "--price", "10", "--validity", "1h",
                   "--rate", "2M/5M").exit_code == 0
    result = provision(kibanda, router_sim, portal_url, "--yes")
    assert result.exit_code == 0, result.output
    assert "1 package profiles" in result.output
    profiles = {p["name"]: p for p in router_sim.rows("/ip/hotspot/user/profile")}
    assert [p for p in profiles.values() if p.get("rate-limit") == "2M/5M"]


@pytest.mark.router(factory_defaults=True, password=ADMIN_PASSWORD, version="6.49.10")
def test_routeros_6_49_is_provisioned_with_its_own_words(kibanda, router_sim, portal_url):
    result = provision(kibanda, router_sim, portal_url, "--yes")
    assert result.exit_code == 0, result.output
    assert router_sim.rows("/system/ntp/client")[0]["server-dns-names"] == "pool.ntp.org"
    assert "not yet: containers need RouterOS 7" in result.output


# --- each failure, in the technician's words ---------------------------------------------------

def test_wrong_password(kibanda, router_sim, portal_url):
    result = provision(kibanda, router_sim, portal_url, "--yes", password="guess")
    assert result.exit_code == 1
    assert "wrong password: the router at 127.0.0.1" in result.output
    assert router_sim.rows("/ip/hotspot") == []


def test_api_service_disabled_or_port_closed(kibanda, router_sim, portal_url):
    closed = free_port()
    result = provision(kibanda, router_sim, portal_url, "--yes", port=closed)
    assert result.exit_code == 1
    assert f"API service disabled or port closed: nothing answers on 127.0.0.1:{closed}" \
        in result.output
    with RouterGateway("127.0.0.1", router_sim.port, "admin", ADMIN_PASSWORD) as gateway:
        api = [s for s in gateway.menu_rows("/ip/service") if s["name"] == "api"][0]
        gateway.command("/ip/service/set", {".id": api[".id"], "disabled": "yes"})
    result = provision(kibanda, router_sim, portal_url, "--yes")
    assert result.exit_code == 1
    assert "API service disabled or port closed" in result.output


@pytest.mark.router(factory_defaults=True, password=ADMIN_PASSWORD, version="6.45.9")
def test_routeros_too_old(kibanda, router_sim, portal_url):
    result = provision(kibanda, router_sim, portal_url, "--yes")
    assert result.exit_code == 1
    assert "RouterOS 6.45.9 (long-term) is too old: Kibanda needs 6.49 or newer" in result.output
    assert router_sim.rows("/ip/hotspot") == []


def test_interface_missing(kibanda, router_sim, portal_url):
    result = kibanda("provision", "--router", f"127.0.0.1:{router_sim.port}", "--user", "admin",
                     "--password", ADMIN_PASSWORD, "--site-name", "Kijiji", "--hotspot-ports",
                     "ether2,ether9", "--portal-url", portal_url, "--yes")
    assert result.exit_code == 1
    assert "interface ether9 does not exist on this router (it has ether1, ether2" in result.output
    assert router_sim.rows("/interface/bridge") == []


def test_not_enough_free_memory(kibanda, router_sim, portal_url):
    router_sim.set_resource(free_memory=10 * 2**20)
    result = provision(kibanda, router_sim, portal_url, "--yes")
    assert result.exit_code == 1
    assert "not enough free memory: the router has 10 MB free" in result.output
    assert router_sim.rows("/ip/hotspot") == []


def test_a_mips_router_is_provisioned_but_told_to_use_a_raspberry_pi(kibanda, router_sim,
                                                                    portal_url):
    router_sim.set_resource(architecture_name="mipsbe", board_name="hAP ac lite",
                            free_memory=40 * 2**20)
    result = provision(kibanda, router_sim, portal_url, "--yes")
    assert result.exit_code == 0, result.output
    assert "container on this router: no: hAP ac lite has a mipsbe CPU" in result.output
    assert "Raspberry Pi" in result.output


@pytest.mark.router(password=ADMIN_PASSWORD)  # a hotspot already set up by hand
def test_pages_a_running_portal_serves_are_the_ones_the_router_gets(kibanda, router_sim,
                                                                   make_site):
    """With the portal already serving (kibanda run), the router fetches from it; the
    hotspot someone set up by hand is brought in line, not duplicated."""
    site = make_site(live_http=True)
    result = provision(kibanda, router_sim, site.url, "--yes")
    assert result.exit_code == 0, result.output
    for name in HOTSPOT_FILES:
        served = requests.get(f"{site.url}/hotspot-html/{name}", timeout=5).content
        assert router_sim.file_bytes(f"kibanda/{name}") == served, name
    assert "Mama Njeri Cafe" in router_sim.file_bytes("kibanda/login.html").decode()
    servers = router_sim.rows("/ip/hotspot")
    assert [(s["name"], s["interface"], s["profile"]) for s in servers] == [
        ("hotspot1", "br-kibanda", "kibanda")]


def test_a_router_address_that_is_not_one(kibanda, portal_url):
    result = kibanda("provision", "--router", "127.0.0.1:http", "--site-name", "x",
                     "--hotspot-ports", "ether2", "--portal-url", portal_url)
    assert result.exit_code == 2
    assert "not a port number" in result.output


def test_an_exported_script_imported_by_hand_is_one_this_appliance_can_use(kibanda, router_sim,
                                                                          portal_url, runner,
                                                                          tmp_path):
    """Declined, but exported: the password in the script is the one the instance keeps."""
    from portal.cli import main

    result = runner.invoke(main, ["--instance", str(tmp_path / "site"), "provision",
                                  "--router", f"127.0.0.1:{router_sim.port}", "--password",
                                  ADMIN_PASSWORD, "--site-name", "Kijiji", "--hotspot-ports",
                                  "ether2", "--portal-url", portal_url, "--export",
                                  str(tmp_path / "site.rsc")], input="n\n")
    assert result.exit_code == 0 and "not applied" in result.output
    script = (tmp_path / "site.rsc").read_text()
    stored = load_settings(tmp_path / "site")["ROUTER_PASSWORD"]
    assert f"password={stored} " in script
