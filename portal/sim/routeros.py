"""A RouterOS API server that librouteros cannot tell from a router (for Kibanda's menus).

``RouterSim`` listens on TCP and serves each connection in a daemon thread
(``routeros_session.ApiSession``: login, dispatch, timed replies), speaking the
emulator's own wire codec (``routeros_wire``). The menus and their rows are a
``RouterState``. Test controls here: reply latency, dropped connections, refused logins,
max-sessions, reboot, factory reset, the router clock, devices joining and leaving the
hotspot, logging in on the router's own page, and their traffic; with ``control_port`` the same controls answer over HTTP
(``routeros_control``). The ``kibanda sim router`` command is in ``portal.cli.sim``.
"""
from __future__ import annotations

import os
import socket
import threading
import time

from portal.sim.control import ControlServer, Controllable
from portal.sim.routeros_control import control_routes
from portal.sim.routeros_session import BAD_LOGIN, ApiSession
from portal.sim.routeros_state import RouterState

__all__ = ["BAD_LOGIN", "RouterSim"]


class RouterSim(Controllable):
    """In-process RouterOS API emulator; ``start()`` it, or use it as a context manager."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, user: str = "admin",
                 password: str = "", version: str = "7.16", latency_ms: float = 0,
                 state_file: str | os.PathLike | None = None, factory_defaults: bool = False,
                 clock: str | None = None, control_port: int | None = None):
        if clock not in (None, "real"):
            raise ValueError("clock must be None (manual) or 'real'")
        self.host = host
        self.requested_port = port
        self.user = user
        self.password = password
        self.version = version
        self.latency_ms = latency_ms
        self.state_file = os.fspath(state_file) if state_file is not None else None
        self.clock = clock
        self.refuse_logins = False
        self.command_log: list[str] = []
        self.lock = threading.RLock()
        self.state = RouterState(version, user, password, factory_defaults)
        if self.state_file and os.path.exists(self.state_file):
            self.state.load(self.state_file)
        self._drop_remaining: int | None = None
        self._sessions: set[ApiSession] = set()
        self._listener: socket.socket | None = None
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self.port = 0
        #: The HTTP control interface's port: None is off, 0 any free port until start().
        self._requested_control_port = control_port
        self._control: ControlServer | None = None

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> "RouterSim":
        """Bind and serve in daemon threads; returns self."""
        listener = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind((self.host, self.requested_port))
            listener.listen(64)
        except OSError:
            listener.close()
            raise
        # accept() wakes up regularly so stop() never depends on closing a blocked socket
        listener.settimeout(0.2)
        self._listener = listener
        self.port = listener.getsockname()[1]
        self._spawn(self._accept_loop, "routeros-sim-accept")
        if self.clock == "real":
            self._spawn(self._real_clock, "routeros-sim-clock")
        self._start_control(control_routes(self), "routeros-sim-control")
        return self

    def stop(self) -> None:
        """Close the listener and every client connection, join threads, save state."""
        self._stop_control()
        self._stopping.set()
        if self._listener is not None:
            try:
                # on Linux this wakes a blocked accept() at once instead of at its timeout
                self._listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # not supported here or already closed: the accept timeout still ends it
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads.clear()
        self._drop_connections()
        self.save_state()

    def __enter__(self) -> "RouterSim":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)`` the emulator listens on."""
        return self.host, self.port

    def _spawn(self, target, name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        listener = self._listener
        try:
            while not self._stopping.is_set():
                try:
                    sock, peer = listener.accept()
                except TimeoutError:
                    continue
                except OSError:
                    if self._stopping.is_set():
                        break  # stop() shut the listener down
                    raise
                if not self.api_enabled:
                    sock.close()  # /ip service api disabled: nobody answers on the port
                    continue
                sock.settimeout(None)
                # one sentence per send: without this, Nagle plus delayed ACKs add 40 ms stalls
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                session = ApiSession(self, sock, peer[0])
                session.thread = threading.Thread(target=session.serve,
                                                  name="routeros-sim-conn", daemon=True)
                with self.lock:
                    self._sessions.add(session)
                session.thread.start()
        finally:
            listener.close()

    def _real_clock(self) -> None:
        last = time.monotonic()
        while not self._stopping.wait(1.0):
            now = time.monotonic()
            whole = int(now - last)
            if whole:
                last += whole
                self.advance(whole)

    def _drop_connections(self) -> int:
        with self.lock:
            sessions = list(self._sessions)
        for session in sessions:
            session.shutdown()
        current = threading.current_thread()
        for session in sessions:
            if session.thread is not None and session.thread is not current:
                session.thread.join(timeout=5)
        return len(sessions)

    def save_state(self) -> None:
        """Write the state file, if there is one and the state changed."""
        with self.lock:
            if self.state_file and self.state.dirty:
                self.state.save(self.state_file)

    # --- fault injection and inspection -----------------------------------------------------

    def drop_connections(self) -> int:
        """Cut every open API connection now; returns how many there were."""
        return self._drop_connections()

    @property
    def open_connections(self) -> int:
        """API connections open now, logged in or not."""
        with self.lock:
            return len(self._sessions)

    def drop_after(self, n: int) -> None:
        """One shot: the connection sending the next replies closes after ``n`` more sentences."""
        with self.lock:
            self._drop_remaining = int(n)

    @property
    def api_enabled(self) -> bool:
        """False once ``/ip service`` api is disabled: new connections are closed at once."""
        with self.lock:
            row = self.state.find("/ip/service", name="api")[0]
            return row.get("disabled") != "true"

    def set_resource(self, **values) -> dict:
        """Change what ``/system/resource`` reports (``free_memory=...``,
        ``architecture_name="mipsbe"``, ``board_name=...``); returns the new values."""
        with self.lock:
            for name, value in values.items():
                key = name.replace("_", "-")
                if key not in self.state.resource:
                    raise ValueError(f"/system/resource has no {key}")
                self.state.resource[key] = str(value)
            self.state.dirty = True
            resource = dict(self.state.resource)
        self.save_state()
        return resource

    def file_bytes(self, name: str) -> bytes | None:
        """A file the router stored (``/tool/fetch`` writes them), as bytes; None if absent."""
        with self.lock:
            rows = self.state.find("/file", name=name)
            return rows[0].get("contents", "").encode() if rows else None

    @property
    def max_sessions(self) -> int:
        """The api service's max-sessions (default 20)."""
        with self.lock:
            row = self.state.find("/ip/service", name="api")[0]
            return int(row.get("max-sessions", "20"))

    @max_sessions.setter
    def max_sessions(self, value: int) -> None:
        with self.lock:
            self.state.find("/ip/service", name="api")[0]["max-sessions"] = str(int(value))
            self.state.dirty = True

    def reboot(self) -> None:
        """Drop every connection, end hotspot sessions, renumber ids; configuration stays."""
        self._drop_connections()
        with self.lock:
            self.state.end_all_sessions()
            self.state.renumber()
            self.state.uptime = 0
        self.save_state()

    def factory_reset(self) -> None:
        """Drop every connection and return to factory defaults (no hotspot), keeping the API user."""
        self._drop_connections()
        with self.lock:
            self.state.load_factory(True, self.user, self.password)
        self.save_state()

    def advance(self, seconds: float) -> None:
        """Move the router clock forward: sessions age, reach limits and end."""
        with self.lock:
            self.state.tick(int(seconds))
        self.save_state()

    def add_traffic(self, user_or_mac: str, bytes_in: int, bytes_out: int) -> int:
        """Count traffic on the active sessions of a user or MAC; returns sessions matched."""
        with self.lock:
            matched = self.state.add_traffic(user_or_mac, int(bytes_in), int(bytes_out))
        self.save_state()
        return matched

    def device_joins(self, ip: str, mac: str) -> dict:
        """A phone got a DHCP lease: it appears in ``/ip/hotspot/host``, not authorized.

        Returns the host row as the API prints it; ValueError for a malformed ip or mac or
        when no hotspot server runs.
        """
        with self.lock:
            row = self.state.host_joins(ip, mac)
        self.save_state()
        return row

    def device_leaves(self, ip_or_mac: str) -> int:
        """A device left: its ``/ip/hotspot/host`` rows and sessions go; returns rows removed."""
        with self.lock:
            removed = self.state.host_leaves(ip_or_mac)
        self.save_state()
        return removed

    def device_logs_in(self, user: str, password: str, ip: str, mac: str) -> dict:
        """A device logs in on the router's own login page (typing a voucher while the
        portal is down); returns the session row. SimTrap when the router refuses,
        ValueError for a malformed ip or mac."""
        with self.lock:
            row = self.state.page_login(user, password, ip, mac)
        self.save_state()
        return row

    def rows(self, path: str) -> list[dict]:
        """A menu's rows as the API prints them (dicts of strings), e.g. ``/ip/hotspot/user``."""
        with self.lock:
            return self.state.rows(path)

    @property
    def fetched(self) -> list[dict]:
        """Every ``/tool/fetch`` request received (its attributes)."""
        with self.lock:
            return [dict(item) for item in self.state.fetched]

    # --- what the sessions ask of the router ---------------------------------------------

    @property
    def serving(self) -> bool:
        """False once ``stop()`` began: sessions stop reading."""
        return not self._stopping.is_set()

    def sessions_logged_in(self, besides: ApiSession) -> int:
        """How many other sessions are logged in (the caller holds the lock)."""
        return sum(1 for s in self._sessions if s.logged_in and s is not besides)

    def count_down_drop(self) -> int | None:
        """Count one reply against ``drop_after``; returns the count before this reply.

        0: cut the connection instead of sending; 1: send, then cut; None: no drop planned.
        """
        with self.lock:
            remaining = self._drop_remaining
            if remaining is not None:
                self._drop_remaining = None if remaining <= 1 else remaining - 1
        return remaining

    def forget(self, session: ApiSession) -> None:
        """A session ended: it no longer counts against max-sessions."""
        with self.lock:
            self._sessions.discard(session)
