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


class Output:
    """The process's output lines, read in a thread (never blocks the test); ``all`` keeps
    every line read so far."""

    def __init__(self, proc):
        self.lines: queue.Queue = queue.Queue()
        self.all: list[str] = []
        self.reader = threading.Thread(target=self._read, args=(proc.stdout,), daemon=True)
        self.reader.start()

    def _read(self, stream) -> None:
        for line in stream:
            self.all.append(line)
            self.lines.put(line)

    def wait_line(self, pattern: str, timeout: float = 30.0) -> re.Match:
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"no line matching {pattern!r}; saw:\n"
                                     + "".join(self.all)) from None
            match = re.search(pattern, line)
            if match:
                return match


def test_kibanda_run_restarts_a_killed_agent_and_stops_both_on_sigterm(tmp_path):
    port = free_port()
    env = {**os.environ, "KIBANDA_INSTANCE": str(tmp_path / "site"),
           "KIBANDA_ROUTER_HOST": "127.0.0.1", "KIBANDA_ROUTER_PORT": str(free_port()),
           "KIBANDA_ROUTER_TIMEOUT": "0.5", "KIBANDA_WEB_WORKERS": "1"}
    # Its own session: whatever happens, the whole tree is killed at the end, so no orphan
    # keeps the output pipe (and the reader thread) open.
    proc = subprocess.Popen([*KIBANDA, "run", "--host", "127.0.0.1", "--port", str(port)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    out = Output(proc)
    try:
        portal_pid = int(out.wait_line(r"portal started \(pid (\d+)\)").group(1))
        agent_pid = int(out.wait_line(r"agent started \(pid (\d+)\)").group(1))
        assert wait_for(lambda: _answers(port), timeout=30)
        os.kill(agent_pid, signal.SIGKILL)
        out.wait_line(rf"agent \(pid {agent_pid}\) exited with -9; restarting in 1s")
        new_pid = int(out.wait_line(r"agent started again \(pid (\d+)\)").group(1))
        assert new_pid != agent_pid
        assert _alive(new_pid) and _alive(portal_pid), "".join(out.all)  # portal left alone
        assert _answers(port)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        out.wait_line(r"^stopped")
        assert not _alive(new_pid) and not _alive(portal_pid)
        # A fresh instance: neither child died making the keys or the tables (they used to
        # race for them and one of the two restarted with "database is locked").
        assert not [line for line in out.all if "Traceback" in line or "exited with 1" in line]
        assert len([line for line in out.all if "exited with" in line]) == 1
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=30)
        out.reader.join(timeout=30)
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
