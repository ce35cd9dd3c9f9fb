"""``kibanda demo`` as a real process: the four packages, the owner's password, Ctrl-C, a
second run in the same folder and a busy port."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import requests
from helpers import KIBANDA, free_port, listening


def start_demo(cwd, port: int, *args: str) -> tuple[subprocess.Popen, str, str]:
    """Start ``kibanda demo`` and read its banner up to the stop hint; returns (proc, url, text)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KIBANDA_")}
    proc = subprocess.Popen([*KIBANDA, "demo", "--port", str(port), *args], cwd=cwd, env=env,
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


def test_demo_runs_again_in_the_same_folder_but_never_wipes_a_running_demo(tmp_path):
    port = free_port()
    first, _url, banner1 = start_demo(tmp_path, port)
    try:
        busy = subprocess.run([*KIBANDA, "demo", "--port", str(port)], cwd=tmp_path,
                              capture_output=True, text=True, timeout=30)
        assert busy.returncode != 0
        assert f"port {port} on 127.0.0.1 is already in use" in busy.stderr
        assert "Traceback" not in busy.stderr
        assert (tmp_path / "instance-demo" / "kibanda.db").exists()  # left untouched
        # What the message says to do: another port AND another folder.
        hint = re.search(r"kibanda demo (--port \d+ --dir \S+)", busy.stderr).group(1).split()
        # Only another port: the running demo's folder is refused, never wiped.
        other_port = free_port()
        clash = subprocess.run([*KIBANDA, "demo", "--port", str(other_port)], cwd=tmp_path,
                               capture_output=True, text=True, timeout=30)
        assert clash.returncode != 0 and "Traceback" not in clash.stderr
        assert "in use by a kibanda demo that is still running" in clash.stderr
        assert f"(pid {first.pid})" in clash.stderr
        assert requests.get(_url, timeout=10).status_code == 200  # the first demo still works
        assert (tmp_path / "instance-demo" / "kibanda.db").exists()
        assert hint[:2] == ["--port", str(port + 1)]
        # Its folder, on a port surely free (port + 1 may be another test's by now).
        beside, beside_url, _banner = start_demo(tmp_path, free_port(), *hint[2:])
        try:
            assert requests.get(beside_url, timeout=10).status_code == 200
        finally:
            code, rest, _took = stop_demo(beside)
        assert code == 0, rest
        assert requests.get(_url, timeout=10).status_code == 200
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


@pytest.mark.site(demo=True)
def test_demo_instance_keeps_the_router_and_mpesa_secrets_encrypted(site):
    from portal.config import load_settings

    instance = Path(site.app.instance_path)
    text = (instance / "kibanda.toml").read_text()
    secrets = [site.router.password, site.daraja.consumer_key, site.daraja.consumer_secret,
               site.app.config["MPESA_PASSKEY"]]
    assert all(secret and secret not in text for secret in secrets)
    settings = load_settings(instance, environ={})
    assert [settings[name] for name in ("ROUTER_PASSWORD", "MPESA_CONSUMER_KEY",
                                        "MPESA_CONSUMER_SECRET", "MPESA_PASSKEY")] == secrets


@pytest.mark.site(demo=True)
def test_demo_request_log_hides_the_callback_secret(site, caplog):
    import logging

    caplog.set_level(logging.INFO, logger="werkzeug")
    secret = site.app.config["CALLBACK_SECRET"]
    answer = requests.post(f"{site.url}/mpesa/callback/{secret}", data=b"not json", timeout=10)
    assert answer.status_code == 400
    lines = [record.getMessage() for record in caplog.records if record.name == "werkzeug"]
    assert any("POST /mpesa/callback/*** HTTP/1.1" in line for line in lines), lines
    assert not any(secret in line for line in lines)


@pytest.mark.site(demo=True)
def test_a_demo_purchase_shows_its_sms_receipt_on_the_owners_page(site):
    from helpers import PAYER, Browser, buy, make_users, visible_text, wait_for

    from portal.cli.demo_site import DEMO_DEVICE
    from portal.models import Grant, Purchase, SmsMessage, db

    with db.connection_context():
        purchase = buy(site, PAYER, name="1 hour", mac=DEMO_DEVICE["mac"], ip=DEMO_DEVICE["ip"])
    with db.connection_context():
        assert wait_for(lambda: Purchase.get_by_id(purchase.id).status == "paid", timeout=15)
        code = Grant.get(Grant.purchase == purchase.id).username
        assert wait_for(lambda: SmsMessage.select().where(
            SmsMessage.state == "delivered").exists(), timeout=15)
    make_users(site.app)
    browser = Browser(site.app)
    browser.login()
    page = visible_text(browser.text("/admin/sms"))
    assert code in page and "delivered" in page
