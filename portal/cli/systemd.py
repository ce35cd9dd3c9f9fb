"""systemd's notify protocol for ``kibanda serve``, ``kibanda agent`` and ``kibanda run``.

Under a unit with ``Type=notify`` and ``WatchdogSec=`` systemd sets ``NOTIFY_SOCKET`` and
``WATCHDOG_USEC``; a service that stops sending ``WATCHDOG=1`` in time is killed and
restarted. Each command pings only while it is really working: the agent once per cycle,
the portal while it answers ``/healthz``, ``kibanda run`` while both children live.
Without systemd every function here does nothing.
"""
from __future__ import annotations

import os
import socket
import threading
import urllib.error
import urllib.request


def sd_notify(state: str) -> None:
    """Tell systemd ``state`` (READY=1, WATCHDOG=1, STOPPING=1) when it listens."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        try:
            sock.sendto(state.encode(), address)
        except OSError:
            pass  # systemd went away: nobody to tell


def watchdog_interval() -> float | None:
    """Seconds between pings (half of WatchdogSec), or None when there is no watchdog."""
    usec = os.environ.get("WATCHDOG_USEC", "")
    return int(usec) / 2_000_000 if usec.isdigit() and int(usec) > 0 else None


def watch_portal(port: int) -> threading.Thread | None:
    """Ping the watchdog while the portal on ``port`` answers /healthz (any status)."""
    interval = watchdog_interval()
    if interval is None:
        return None

    def loop() -> None:
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz",
                                            timeout=interval):
                    pass
                answered = True
            except urllib.error.HTTPError:
                answered = True  # 503: the portal answers, the site has a problem
            except OSError:
                answered = False
            if answered:
                sd_notify("WATCHDOG=1")
            threading.Event().wait(interval)

    thread = threading.Thread(target=loop, name="kibanda-watchdog", daemon=True)
    thread.start()
    return thread
