"""``kibanda packages``: add, list, bad input, and the profile on a configured router."""
from __future__ import annotations

import re

import pytest

from portal.cli import main
from portal.models import Package, db


def package_rows() -> list[Package]:
    """Every package in the open instance's database."""
    with db.connection_context():
        return list(Package.select().order_by(Package.id))


def test_packages_add_then_list_shows_the_table(kibanda):
    added = kibanda("packages", "add", "--name", "1 hour", "--name-sw", "Saa 1", "--price", "10",
                    "--validity", "1h", "--rate", "2M/5M")
    assert added.exit_code == 0, added.output
    assert "added package #1 1 hour, KES 10, 1h, 2M/5M, 1 device" in added.output
    week = kibanda("packages", "add", "--name", "1 week", "--price", "250", "--validity", "7d",
                   "--devices", "3", "--data-cap", "5GB")
    assert week.exit_code == 0, week.output

    listed = kibanda("packages", "list")
    assert listed.exit_code == 0, listed.output
    header, first, second = listed.output.strip().splitlines()
    assert header.split() == ["ID", "NAME", "PRICE", "VALIDITY", "SPEED", "DEVICES", "DATA",
                              "WHEN", "ROUTER"]
    assert re.match(r"1\s+1 hour / Saa 1\s+KES 10\s+1h\s+2M/5M\s+1\s+-\s+any time\s+"
                    r"not on router yet$", first), first
    assert re.match(r"2\s+1 week\s+KES 250\s+1w\s+unlimited\s+3\s+5 GB\s+any time\s+"
                    r"not on router yet$", second), second
    [one, two] = package_rows()
    assert (one.price, one.validity_seconds, one.rate_limit, one.name_sw) == (10, 3600, "2M/5M", "Saa 1")
    assert (two.devices, two.data_cap_bytes) == (3, 5_000_000_000)


def test_packages_with_a_time_window_add_edit_and_list(kibanda):
    night = kibanda("packages", "add", "--name", "Night", "--price", "30", "--validity", "8h",
                    "--hours", "22:00-06:00", "--outside", "wait")
    assert night.exit_code == 0, night.output
    assert "Every night 22:00 - 06:00, sold ahead" in night.output
    bad = kibanda("packages", "add", "--name", "Weekend", "--price", "100", "--validity", "2d",
                  "--days", "saturday,funday")
    assert bad.exit_code != 0
    assert "Days must be names like sat, sun (or weekend, mon-fri)." in bad.output
    weekend = kibanda("packages", "add", "--name", "Weekend", "--price", "100",
                      "--validity", "2d", "--days", "weekend")
    assert weekend.exit_code == 0, weekend.output
    edited = kibanda("packages", "edit", "Night", "--price", "35")
    assert "Every night 22:00 - 06:00, sold ahead" in edited.output  # the window is kept
    cleared = kibanda("packages", "edit", "Night", "--hours", "")
    assert cleared.exit_code == 0 and "Every night" not in cleared.output
    listed = kibanda("packages", "list").output
    assert "Saturdays and Sundays (refused outside)" in listed
    assert re.search(r"Night\s+KES 35\s+8h\s+unlimited\s+1\s+-\s+any time", listed), listed


def test_packages_add_puts_the_profile_on_a_configured_router(tmp_path, monkeypatch, runner):
    from portal.sim.routeros import RouterSim

    with RouterSim(password="api-secret") as router:
        monkeypatch.setenv("KIBANDA_ROUTER_HOST", "127.0.0.1")
        monkeypatch.setenv("KIBANDA_ROUTER_PORT", str(router.port))
        monkeypatch.setenv("KIBANDA_ROUTER_USER", "admin")
        monkeypatch.setenv("KIBANDA_ROUTER_PASSWORD", "api-secret")
        result = runner.invoke(main, ["--instance", str(tmp_path / "site"), "packages",
                                           "add", "--name", "2 hours", "--price", "20",
                                           "--validity", "2h", "--rate", "1M/4M",
                                           "--devices", "2"])
        assert result.exit_code == 0, result.output
        assert "is on the router" in result.output
        profile = [p for p in router.rows("/ip/hotspot/user/profile")
                   if p["name"] == "kb-2-hours"]
        assert profile and profile[0]["rate-limit"] == "1M/4M"
        assert profile[0]["shared-users"] == "2"
    assert package_rows()[0].router_synced_at is not None


@pytest.mark.parametrize("args, message", [
    (["--price", "abc", "--validity", "1h"], "Price must be a whole number of shillings"),
    (["--price", "0", "--validity", "1h"], "Price must be a whole number of shillings"),
    (["--price", "10", "--validity", "forever"], "Validity must look like 1h, 1d, 7d or 30d"),
    (["--price", "10", "--validity", "1h", "--rate", "fast"], "Speed must look like 2M/5M"),
    (["--price", "10", "--validity", "1h", "--devices", "99"], "Devices must be from 1 to 10"),
    (["--price", "10", "--validity", "1h", "--data-cap", "lots"], "Data cap must look like 500MB"),
])
def test_packages_add_refuses_bad_input_and_creates_nothing(kibanda, args, message):
    result = kibanda("packages", "add", "--name", "1 hour", *args)
    assert result.exit_code == 2
    assert f"error: {message}" in result.output
    assert "Traceback" not in result.output
    assert package_rows() == []
    assert "no packages yet" in kibanda("packages", "list").output


def test_packages_add_without_required_options_is_a_usage_error(kibanda):
    result = kibanda("packages", "add", "--name", "1 hour")
    assert result.exit_code == 2
    assert "Missing option '--price'" in result.output


def test_packages_edit_retire_and_sell_again(kibanda):
    assert kibanda("packages", "add", "--name", "1 hour", "--name-sw", "Saa 1", "--price", "10",
                   "--validity", "1h", "--rate", "2M/5M").exit_code == 0
    edited = kibanda("packages", "edit", "1 HOUR", "--price", "15", "--devices", "2")
    assert edited.exit_code == 0, edited.output
    assert "changed package #1 1 hour, KES 15, 1h, 2M/5M, 2 devices" in edited.output
    [hour] = package_rows()
    assert (hour.price, hour.devices, hour.name_sw, hour.rate_limit) == (15, 2, "Saa 1", "2M/5M")

    retired = kibanda("packages", "retire", "1")
    assert retired.exit_code == 0 and "retired package #1 1 hour" in retired.output
    assert "no packages yet" in kibanda("packages", "list").output  # not on sale
    assert "1 hour / Saa 1 (retired)" in kibanda("packages", "list", "--all").output
    sold = kibanda("packages", "sell", "kb-1-hour")
    assert sold.exit_code == 0 and "is on sale again" in sold.output
    assert package_rows()[0].active

    for args, message in [(["edit", "2 hours", "--price", "5"], "No package named 2 hours."),
                          (["edit", "1 hour"], "nothing to change"),
                          (["edit", "1 hour", "--price", "free"], "Price must be a whole"),
                          (["retire", "99"], "No package named 99.")]:
        refused = kibanda("packages", *args)
        assert refused.exit_code == 2 and message in refused.output, refused.output
        assert "Traceback" not in refused.output
    assert package_rows()[0].price == 15


def test_duplicate_package_names_are_refused_with_a_clear_message(kibanda):
    assert kibanda("packages", "add", "--name", "1 hour", "--price", "10",
                   "--validity", "1h").exit_code == 0
    assert kibanda("packages", "add", "--name", "1 day", "--price", "50",
                   "--validity", "1d").exit_code == 0
    twice = kibanda("packages", "add", "--name", "1 Hour", "--price", "20", "--validity", "1h")
    assert twice.exit_code == 2
    assert "error: There is already a package called 1 Hour." in twice.output
    renamed = kibanda("packages", "edit", "1 day", "--name", "1 HOUR")
    assert renamed.exit_code == 2 and "already a package called 1 HOUR" in renamed.output
    assert [p.name_en for p in package_rows()] == ["1 hour", "1 day"]


def test_packages_with_a_slow_speed_after_the_cap(kibanda):
    added = kibanda("packages", "add", "--name", "1 GB", "--price", "50", "--validity", "1d",
                    "--rate", "2M/5M", "--data-cap", "1GB", "--slow-speed", "256k/256k")
    assert added.exit_code == 0, added.output
    assert "added package #1 1 GB, KES 50, 1d, 2M/5M, 1 device, 1 GB, then 256k/256k" in added.output
    listed = kibanda("packages", "list").output.strip().splitlines()
    assert re.search(r"\s1 GB, then 256k/256k\s", listed[1]), listed[1]
    no_cap = kibanda("packages", "add", "--name", "Day", "--price", "50", "--validity", "1d",
                     "--slow-speed", "256k/256k")
    assert no_cap.exit_code != 0
    assert "A slow speed after the cap needs a data cap." in no_cap.output
    faster = kibanda("packages", "edit", "1 GB", "--slow-speed", "4M/4M")
    assert faster.exit_code != 0
    assert "must not be faster than the package's own speed (2M/5M)" in faster.output
    cut_off = kibanda("packages", "edit", "1 GB", "--slow-speed", "")
    assert cut_off.exit_code == 0, cut_off.output
    assert [(p.data_cap_bytes, p.fair_use_rate) for p in package_rows()] == [(10**9, "")]
