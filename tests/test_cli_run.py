"""``kibanda run``: the portal and the agent under one supervisor that restarts a dead one."""
from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import threading

import requests
from helpers import KIBANDA, free_port, wait_for


def lines_of(proc) -> tuple[queue.Queue, threading.Thread]:
    """The process's output lines, read in a thread (never blocks the test)."""
    found: queue.Queue = queue.Queue()

    def read():
        for line in proc.stdout:
            found.put(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    return found, reader


def wait_line(found: queue.Queue, pattern: str, timeout: float = 30.0) -> re.Match:
    seen = []
    while True:
        try:
            line = found.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no line matching {pattern!r}; saw {seen}") from None
        seen.append(line)
        match = re.search(pattern, line)
        if match:
            return match


def test_kibanda_run_restarts_a_killed_agent_and_stops_both_on_sigterm(tmp_path):
    port = free_port()
    env = {**os.environ, "KIBANDA_INSTANCE": str(tmp_path / "site"),
           "KIBANDA_ROUTER_HOST": "127.0.0.1", "KIBANDA_ROUTER_PORT": str(free_port()),
           "KIBANDA_ROUTER_TIMEOUT": "0.5", "KIBANDA_WEB_WORKERS": "1"}
    proc = subprocess.Popen([*KIBANDA, "run", "--host", "127.0.0.1", "--port", str(port)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    found, reader = lines_of(proc)
    try:
        portal_pid = int(wait_line(found, r"portal started \(pid (\d+)\)").group(1))
        agent_pid = int(wait_line(found, r"agent started \(pid (\d+)\)").group(1))
        assert wait_for(lambda: _answers(port), timeout=30)
        os.kill(agent_pid, signal.SIGKILL)
        wait_line(found, rf"agent \(pid {agent_pid}\) exited with -9; restarting in 1s")
        new_pid = int(wait_line(found, r"agent started again \(pid (\d+)\)").group(1))
        assert new_pid != agent_pid
        assert _alive(new_pid) and _alive(portal_pid)  # the portal was left alone
        assert _answers(port)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        wait_line(found, r"^stopped")
        assert not _alive(new_pid) and not _alive(portal_pid)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(timeout=10)
        proc.stdout.close()


def _answers(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code in (200, 503)
    except requests.RequestException:
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie child of the supervisor is gone for our purposes
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False
