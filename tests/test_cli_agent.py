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
