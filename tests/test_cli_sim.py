"""``kibanda sim router|mpesa|sms --control-port``: the banner names the control interface and
it answers, in a process of its own as a technician would run it."""
from __future__ import annotations

import os
import signal
import subprocess

import librouteros
import pytest
import requests
from helpers import KIBANDA, delivery_reports, wait_for


def run_until_banner(args: list[str], lines: int, cwd) -> tuple[subprocess.Popen, list[str]]:
    """Start ``kibanda sim ...`` and read the first ``lines`` lines it prints."""
    process = subprocess.Popen([*KIBANDA, "sim", *args], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, cwd=cwd,
                               env=dict(os.environ, PYTHONPATH=os.getcwd()))
    return process, [process.stdout.readline() for _ in range(lines)]


def stop(process: subprocess.Popen) -> str:
    """SIGTERM, then everything it printed afterwards; checks it stopped cleanly."""
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=10)
    assert process.returncode == 0, err
    return out


def control_url(line: str) -> str:
    assert line.startswith("control interface at http://127.0.0.1:"), line
    return line.split(" at ")[1].split()[0]


def test_router_with_a_control_port(tmp_path):
    process, (banner, control) = run_until_banner(
        ["router", "--port", "0", "--control-port", "0"], 2, tmp_path)
    try:
        url = control_url(control)
        port = int(banner.split("127.0.0.1:")[1].split()[0])
        assert requests.get(url + "/status", timeout=5).json()["api_port"] == port
        joined = requests.post(url + "/hosts", json={"ip": "10.5.50.23",
                                                     "mac": "AA:BB:CC:DD:EE:01"}, timeout=5)
        assert joined.status_code == 201
        api = librouteros.connect("127.0.0.1", "admin", "", port=port, timeout=5)
        try:
            (host,) = tuple(api.path("ip", "hotspot", "host"))
            assert host["mac-address"] == "AA:BB:CC:DD:EE:01" and host["authorized"] is False
        finally:
            api.close()
    finally:
        stop(process)


def test_mpesa_with_a_control_port(tmp_path):
    process, (banner,) = run_until_banner(["mpesa", "--port", "0", "--control-port", "0"],
                                          1, tmp_path)
    try:
        base = banner.split(" at ")[1].split()[0]
        printed = [banner]
        while not printed[-1].startswith("control interface") and printed[-1]:
            printed.append(process.stdout.readline())  # the banner's last line names it
        control = printed[-1]
        url = control_url(control)
        status = requests.get(url + "/status", timeout=5).json()
        assert status["base_url"] == base and url != base
        assert requests.post(url + "/phones/0700000001", json={"callback": "lost"},
                             timeout=5).json() == {"phone": "254700000001",
                                                   "rules": {"callback": "lost"}}
    finally:
        stop(process)
    assert "| 254700001032 | cancelled by user (1032) |\n" in printed[:-1]


def test_sms_sends_and_reports_delivery(tmp_path, receiver):
    process, printed = run_until_banner(
        ["sms", "--port", "0", "--control-port", "0", "--sender-id", "KIBANDA",
         "--sender-id", "CAFE", "--api-key", "test-key", "--delivery-report-url", receiver.url,
         "--delivery-delay", "0"], 5, tmp_path)
    try:
        banner, send_line, reports_line, numbers, control = printed
        assert banner.startswith("Africa's Talking SMS emulator at http://127.0.0.1:")
        assert "sender ids KIBANDA, CAFE" in banner and "test-key" not in "".join(printed)
        base = banner.split(" at ")[1].split()[0]
        assert send_line.startswith(f"send: POST {base}/version1/messaging")
        assert reports_line == f"delivery reports: {receiver.url}\n"
        assert "...406 UserInBlacklist" in numbers
        sent = requests.post(base + "/version1/messaging", timeout=5,
                             headers={"apiKey": "test-key", "Accept": "application/json"},
                             data={"username": "sandbox", "to": "+254711000001",
                                   "message": "Hello", "from": "CAFE"})
        assert sent.status_code == 201
        (recipient,) = sent.json()["SMSMessageData"]["Recipients"]
        assert recipient["status"] == "Success"
        assert wait_for(lambda: delivery_reports(receiver))
        assert delivery_reports(receiver)[0]["id"] == recipient["messageId"]
        url = control_url(control)
        assert requests.get(url + "/status", timeout=5).json()["url"] == base
    finally:
        stop(process)


@pytest.mark.parametrize("command", ["router", "mpesa", "sms"])
def test_no_control_port_unless_asked(tmp_path, command):
    process, (banner,) = run_until_banner([command, "--port", "0"], 1, tmp_path)
    out = stop(process)
    assert "control interface" not in banner + out
