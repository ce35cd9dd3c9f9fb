"""``kibanda agent``: the background worker as a process, stopped by SIGTERM."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time


def test_kibanda_agent_stops_on_sigterm(tmp_path):
    env = {**os.environ, "KIBANDA_INSTANCE": str(tmp_path / "site"),
           "KIBANDA_ROUTER_HOST": "127.0.0.1", "KIBANDA_ROUTER_PORT": "9",
           "KIBANDA_ROUTER_TIMEOUT": "0.5"}
    proc = subprocess.Popen([sys.executable, "-c", "from portal.cli import main; main()",
                             "agent", "--interval", "0.2"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = proc.stdout.readline()
        assert "agent started" in line
        time.sleep(0.5)  # a few cycles
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0
    assert "agent stopped" in out


def _site_env(monkeypatch, router, password, mpesa_url=None, daraja=None):
    for name, value in {"ROUTER_HOST": "127.0.0.1", "ROUTER_PORT": str(router.port),
                        "ROUTER_USER": router.user, "ROUTER_PASSWORD": password,
                        "ROUTER_TIMEOUT": "2"}.items():
        monkeypatch.setenv(f"KIBANDA_{name}", value)
    if daraja is not None:
        for name, value in {"MPESA_BASE_URL": mpesa_url or daraja.base_url,
                            "MPESA_CONSUMER_KEY": daraja.consumer_key,
                            "MPESA_CONSUMER_SECRET": daraja.consumer_secret,
                            "MPESA_SHORTCODE": daraja.shortcode,
                            "MPESA_PASSKEY": daraja.passkey,
                            "MPESA_CONNECT_TIMEOUT": "1", "MPESA_READ_TIMEOUT": "2"}.items():
            monkeypatch.setenv(f"KIBANDA_{name}", value)


def test_agent_once_passes_when_router_and_mpesa_answer(kibanda, router_sim, daraja_sim,
                                                        monkeypatch):
    _site_env(monkeypatch, router_sim, router_sim.password, daraja=daraja_sim)
    result = kibanda("agent", "--once")
    assert result.exit_code == 0, result.output
    assert "router: 1" in result.output and "mpesa: 1" in result.output


def test_agent_once_fails_with_a_wrong_router_password(kibanda, router_sim, monkeypatch):
    """A quiet site never touches the router in a cycle: --once still finds the fault."""
    _site_env(monkeypatch, router_sim, "not-the-password")
    result = kibanda("agent", "--once")
    assert result.exit_code == 1
    assert "router: FAILED" in result.output and "invalid user name or password" in result.output


def test_agent_once_fails_when_mpesa_cannot_be_reached(kibanda, router_sim, daraja_sim,
                                                       monkeypatch):
    from helpers import free_port

    _site_env(monkeypatch, router_sim, router_sim.password, daraja=daraja_sim,
              mpesa_url=f"http://127.0.0.1:{free_port()}")
    result = kibanda("agent", "--once")
    assert result.exit_code == 1
    assert "mpesa: FAILED" in result.output


def test_kibanda_agent_tells_systemd_it_is_ready_and_pings_the_watchdog_each_cycle(tmp_path):
    import socket

    address = str(tmp_path / "notify")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(address)
    listener.settimeout(20)
    env = {**os.environ, "KIBANDA_INSTANCE": str(tmp_path / "site"),
           "KIBANDA_ROUTER_HOST": "127.0.0.1", "KIBANDA_ROUTER_PORT": "9",
           "KIBANDA_ROUTER_TIMEOUT": "0.5", "NOTIFY_SOCKET": address,
           "WATCHDOG_USEC": "10000000"}
    proc = subprocess.Popen([sys.executable, "-c", "from portal.cli import main; main()",
                             "agent", "--interval", "0.2"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        messages = [listener.recv(100).decode() for _ in range(3)]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
        listener.close()
    assert messages[0] == "READY=1"
    assert messages[1:] == ["WATCHDOG=1", "WATCHDOG=1"]
