"""``kibanda serve``: the portal under gunicorn with the instance and the environment."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import time

import requests
from helpers import KIBANDA, free_port, listening


def serve(tmp_path, workers: int, **environment) -> tuple[subprocess.Popen, int]:
    """``kibanda serve`` on the test's instance, started and listening; (process, port)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KIBANDA_")}
    proc = subprocess.Popen([*KIBANDA, "--instance", str(tmp_path / "site"), "serve",
                             "--host", "127.0.0.1", "--port", str(port),
                             "--workers", str(workers)],
                            env={**env, **environment}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not listening(port):
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
        time.sleep(0.1)
    return proc, port


def test_serve_runs_the_portal_under_gunicorn_with_instance_and_environment(tmp_path, kibanda):
    assert kibanda("packages", "add", "--name", "1 day", "--price", "50",
                   "--validity", "1d").exit_code == 0
    # The environment wins over the instance's defaults.
    proc, port = serve(tmp_path, 2, KIBANDA_SITE_NAME="Mama Njeri Cafe")
    try:
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


def test_serve_access_log_hides_the_callback_secret(tmp_path, kibanda):
    assert kibanda("packages", "list").exit_code == 0  # makes the instance and its keys
    secret = (tmp_path / "site" / "callback_secret").read_text().strip()
    proc, port = serve(tmp_path, 1)
    try:
        answer = requests.post(f"http://127.0.0.1:{port}/mpesa/callback/{secret}?x=1",
                               data=b"not json", timeout=10)
        assert answer.status_code == 400  # it reached the callback: the secret was right
        assert requests.post(f"http://127.0.0.1:{port}/mpesa/callback/a-guess", data=b"{}",
                             timeout=10).status_code == 404
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert re.search(r'"POST /mpesa/callback/\*\*\*\S* HTTP/1\.1" 400 ', out), out
    assert re.search(r'"POST /mpesa/callback/\*\*\* HTTP/1\.1" 404 ', out), out
    assert secret not in out and secret not in err
    assert "a-guess" not in out
