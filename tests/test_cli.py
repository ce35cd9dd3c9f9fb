"""``kibanda packages`` (add, list, bad input) and ``kibanda demo`` as a real process."""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest
import requests
from click.testing import CliRunner

from portal.cli import main
from portal.models import Package, db

KIBANDA = [sys.executable, "-c", "from portal.cli import main; main(prog_name='kibanda')"]


@pytest.fixture
def kibanda(tmp_path):
    """Run ``kibanda --instance <tmp> ...`` in-process; returns the click result."""
    runner = CliRunner()
    instance = tmp_path / "site"

    def run(*args):
        return runner.invoke(main, ["--instance", str(instance), *args])

    yield run
    if not db.is_closed():
        db.close()


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
                              "ROUTER"]
    assert re.match(r"1\s+1 hour / Saa 1\s+KES 10\s+1h\s+2M/5M\s+1\s+-\s+not on router yet$",
                    first), first
    assert re.match(r"2\s+1 week\s+KES 250\s+1w\s+unlimited\s+3\s+5 GB\s+not on router yet$",
                    second), second
    [one, two] = package_rows()
    assert (one.price, one.validity_seconds, one.rate_limit, one.name_sw) == (10, 3600, "2M/5M", "Saa 1")
    assert (two.devices, two.data_cap_bytes) == (3, 5_000_000_000)


def test_packages_add_puts_the_profile_on_a_configured_router(tmp_path, monkeypatch):
    from portal.sim.routeros import RouterSim

    with RouterSim(password="api-secret") as router:
        monkeypatch.setenv("KIBANDA_ROUTER_HOST", "127.0.0.1")
        monkeypatch.setenv("KIBANDA_ROUTER_PORT", str(router.port))
        monkeypatch.setenv("KIBANDA_ROUTER_USER", "admin")
        monkeypatch.setenv("KIBANDA_ROUTER_PASSWORD", "api-secret")
        result = CliRunner().invoke(main, ["--instance", str(tmp_path / "site"), "packages",
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


# -- kibanda demo ---------------------------------------------------------------------------

def free_port() -> int:
    """A port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_demo(cwd, port: int) -> tuple[subprocess.Popen, str, str]:
    """Start ``kibanda demo`` and read its banner up to the stop hint; returns (proc, url, text)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KIBANDA_")}
    proc = subprocess.Popen([*KIBANDA, "demo", "--port", str(port)], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if "Ctrl-C" in line:
            break
    text = "".join(lines)
    match = re.search(r"(http://127\.0\.0\.1:\d+/\?\S+)", text)
    if match is None:
        stop_demo(proc)
        pytest.fail(f"no customer URL printed:\n{text}")
    return proc, match.group(1), text


def stop_demo(proc: subprocess.Popen) -> tuple[int, str, float]:
    """SIGINT (Ctrl-C) the demo; returns (exit code, the rest of its output, seconds taken)."""
    started = time.monotonic()
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        rest, _ = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        rest, _ = proc.communicate()
    return proc.returncode, rest, time.monotonic() - started


def listening(port: int) -> bool:
    """True when something accepts connections on 127.0.0.1:port."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def test_demo_serves_the_four_packages_and_stops_cleanly_on_ctrl_c(tmp_path):
    port = free_port()
    proc, url, banner = start_demo(tmp_path, port)
    try:
        assert url.startswith(f"http://127.0.0.1:{port}/?mac=AA:BB:CC:00:00:01&ip=10.5.50.23")
        assert "link-login-only=http://wifi.kibanda.lan/login" in url
        assert "254700001032" in banner and "cancelled" in banner
        assert f"http://127.0.0.1:{port}/admin/" in banner
        password = re.search(r"password: (\S+)", banner).group(1)
        assert len(password) >= 10
        router_port = int(re.search(r"RouterOS API on 127\.0\.0\.1:(\d+)", banner).group(1))

        page = requests.get(url, timeout=10)
        assert page.status_code == 200
        radios = re.findall(r'<input type="radio" name="package" value="(\d+)"', page.text)
        prices = re.findall(r'class="price">KES (\d+)<', page.text)
        assert len(radios) == 4 and prices == ["10", "50", "250", "800"]
        assert 'value="AA:BB:CC:00:00:01"' in page.text  # the device rides along to /buy

        # The printed owner password opens the admin pages.
        with requests.Session() as owner:
            form = owner.get(f"http://127.0.0.1:{port}/admin/login", timeout=10)
            token = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
            signed_in = owner.post(f"http://127.0.0.1:{port}/admin/login", timeout=10,
                                   data={"csrf_token": token, "username": "owner",
                                         "password": password})
            assert signed_in.status_code == 200
            assert "/admin/login" not in signed_in.url
    finally:
        code, rest, took = stop_demo(proc)
    assert code == 0, rest
    assert took < 5
    assert "demo stopped" in rest
    assert not listening(port) and not listening(router_port)
    # No child process left behind: the demo is one process, and it is gone.
    with pytest.raises(ProcessLookupError):
        os.kill(proc.pid, 0)


def test_demo_runs_again_in_the_same_folder_and_reports_a_busy_port(tmp_path):
    port = free_port()
    first, _url, banner1 = start_demo(tmp_path, port)
    try:
        busy = subprocess.run([*KIBANDA, "demo", "--port", str(port)], cwd=tmp_path,
                              capture_output=True, text=True, timeout=30)
        assert busy.returncode != 0
        assert f"port {port} on 127.0.0.1 is already in use" in busy.stderr
        assert "Traceback" not in busy.stderr
        assert (tmp_path / "instance-demo" / "kibanda.db").exists()  # left untouched
    finally:
        code, rest, _took = stop_demo(first)
    assert code == 0, rest

    second, url, banner2 = start_demo(tmp_path, port)
    try:
        page = requests.get(url, timeout=10)
        # A fresh instance each run: still four packages, and a new owner password.
        assert len(re.findall(r'name="package"', page.text)) == 4
        first_password = re.search(r"password: (\S+)", banner1).group(1)
        assert re.search(r"password: (\S+)", banner2).group(1) != first_password
    finally:
        code, rest, _took = stop_demo(second)
    assert code == 0, rest


def test_serve_runs_the_portal_under_gunicorn_with_instance_and_environment(tmp_path, kibanda):
    assert kibanda("packages", "add", "--name", "1 day", "--price", "50",
                   "--validity", "1d").exit_code == 0
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KIBANDA_")}
    env["KIBANDA_SITE_NAME"] = "Mama Njeri Cafe"  # environment over the instance defaults
    proc = subprocess.Popen([*KIBANDA, "--instance", str(tmp_path / "site"), "serve",
                             "--host", "127.0.0.1", "--port", str(port), "--workers", "2"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not listening(port):
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
            time.sleep(0.1)
        page = requests.get(f"http://127.0.0.1:{port}/?mac=AA:BB:CC:00:00:09&ip=10.5.50.9",
                            timeout=10)
        assert page.status_code == 200
        assert "Mama Njeri Cafe" in page.text and "KES 50" in page.text
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "Booting worker" in err
    # One access-log line per request, on stdout.
    assert re.search(r'127\.0\.0\.1 "GET /\?mac=AA:BB:CC:00:00:09\S* HTTP/1\.1" 200 ', out), out
    assert not listening(port)
