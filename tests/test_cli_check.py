"""``kibanda check``: every line OK on a site ``kibanda provision`` set up, and each
thing broken afterwards named with its fix (exit status 1)."""
from __future__ import annotations

import pytest
from helpers import free_port

from portal.config import write_config_values
from portal.routeros import RouterGateway

pytestmark = [pytest.mark.router(factory_defaults=True, password="ruta-admin"),
              pytest.mark.usefixtures("daraja_sim")]


@pytest.fixture
def provisioned(kibanda, router_sim, daraja_sim, tmp_path):
    """A site on the emulators, provisioned from factory defaults; returns its instance."""
    instance = tmp_path / "site"
    assert kibanda("init", "--password", "chai-na-mandazi").exit_code == 0
    write_config_values(instance, {
        "MPESA_BASE_URL": daraja_sim.base_url, "MPESA_CONSUMER_KEY": daraja_sim.consumer_key,
        "MPESA_CONSUMER_SECRET": daraja_sim.consumer_secret,
        "MPESA_SHORTCODE": daraja_sim.shortcode, "MPESA_PASSKEY": daraja_sim.passkey})
    result = kibanda("provision", "--router", f"127.0.0.1:{router_sim.port}", "--password",
                     "ruta-admin", "--site-name", "Mama Njeri Cafe", "--hotspot-ports", "ether2",
                     "--portal-url", f"http://127.0.0.1:{free_port()}", "--yes")
    assert result.exit_code == 0, result.output
    return instance


def lines(result) -> dict[str, str]:
    """Each check's first line, by its name."""
    found = {}
    for line in result.output.splitlines():
        if line.startswith(("OK   ", "FAIL ")):
            name = line[5:].split(":")[0]
            found[name] = line
    return found


def test_a_provisioned_site_is_healthy(kibanda, provisioned):
    result = kibanda("check")
    assert result.exit_code == 0, result.output
    report = lines(result)
    assert len(report) == 9 and all(line.startswith("OK") for line in report.values())
    assert "9 of 9 checks OK" in result.output
    assert "9 files in kibanda/, sizes match" in report["hotspot files present and current"]
    assert "STK query, then Pull Transactions" in report["payment confirmation path"]
    assert "NTP synchronized, time zone Africa/Nairobi" in report["router clock in sync"]


def test_a_broken_site_says_what_is_wrong_and_how_to_fix_it(kibanda, provisioned, router_sim):
    with RouterGateway("127.0.0.1", router_sim.port, "admin", "ruta-admin") as gateway:
        gone = [f for f in gateway.menu_rows("/file") if f["name"] == "kibanda/md5.js"][0]
        gateway.command("/file/remove", {".id": gone[".id"]})
        profile = gateway.menu_rows("/ip/hotspot/profile", {"name": "kibanda"})[0]
        gateway.command("/ip/hotspot/profile/set", {".id": profile[".id"],
                                                    "login-by": "http-chap,cookie"})
        gateway.command("/system/ntp/client/set", {"enabled": "no"})
    write_config_values(provisioned, {"MPESA_CONSUMER_SECRET": "not-the-secret",
                                      "UPSTREAM_URL": f"http://127.0.0.1:{free_port()}"})
    result = kibanda("check")
    assert result.exit_code == 1
    report = lines(result)
    assert report["router reachable, login allowed"].startswith("OK")
    assert "1 of 9 files differ from this site's: md5.js (missing)" in \
        report["hotspot files present and current"]
    assert "login-by lacks http-pap, mac-cookie" in report["hotspot server and profile"]
    assert "fix: /ip hotspot profile set kibanda login-by=http-chap,http-pap,cookie,mac-cookie" \
        in result.output
    assert "NTP client is off" in report["router clock in sync"]
    assert report["M-Pesa credentials accepted"].startswith("FAIL")
    assert "does not answer" in report["upstream reachable"]
    assert "4 of 9 checks OK" in result.output


def test_a_wrong_router_password_is_the_first_line_and_the_rest_wait_for_it(kibanda,
                                                                            provisioned):
    write_config_values(provisioned, {"ROUTER_PASSWORD": "not-it"})
    result = kibanda("check")
    assert result.exit_code == 1
    report = lines(result)
    assert "the router refused user 'kibanda': wrong password" in \
        report["router reachable, login allowed"]
    assert "not checked: the router cannot be asked" in report["hotspot server and profile"]
    assert report["M-Pesa credentials accepted"].startswith("OK")
