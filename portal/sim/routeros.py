"""A RouterOS API server that librouteros cannot tell from a router (for Kibanda's menus).

``RouterSim`` serves the binary API protocol (``portal.apiwire``) over TCP in daemon
threads, answers logins (plain and the legacy challenge), and dispatches commands to
``RouterState``. Fault injection: reply latency, dropped connections, refused logins,
max-sessions, reboot and factory reset. ``router_command`` is ``kibanda sim router``.
"""
from __future__ import annotations

import hashlib
import ipaddress
import os
import queue
import secrets
import signal
import socket
import threading
import time

import click

from portal.apiwire import SocketReader, WireError, encode_sentence, parse_attributes
from portal.sim.routeros_menus import SimTrap
from portal.sim.routeros_state import RouterState

BAD_LOGIN = "invalid user name or password (6)"


class _Dropped(Exception):
    """The emulator closed this connection on purpose (fault injection, quit, reboot)."""


class _Connection:
    """One client socket and its login state."""

    def __init__(self, sock: socket.socket, peer: str):
        self.sock = sock
        self.peer = peer
        self.reader = SocketReader(sock)
        self.logged_in = False
        self.challenge: bytes | None = None
        self.thread: threading.Thread | None = None
        # Replies delayed by the simulated network latency wait here, so the emulator keeps
        # reading and answering pipelined commands meanwhile, as a router behind a slow link.
        self.outbox: queue.Queue = queue.Queue()
        self.writer: threading.Thread | None = None

    def deliver_later(self, due: float, data: bytes) -> None:
        """Queue ``data`` to be sent at monotonic time ``due`` (in order)."""
        if self.writer is None:
            self.writer = threading.Thread(target=self._write_loop, daemon=True,
                                           name="routeros-sim-writer")
            self.writer.start()
        self.outbox.put((due, data))

    def has_pending(self) -> bool:
        """True while delayed replies are still waiting to be sent."""
        return self.outbox.unfinished_tasks > 0

    def flush(self) -> None:
        """Wait until every delayed reply has been sent (or the socket failed)."""
        if self.writer is not None:
            self.outbox.join()

    def close_writer(self) -> None:
        """Send what is queued, then stop the writer thread."""
        if self.writer is not None:
            self.outbox.put(None)
            self.writer.join(timeout=5)
            self.writer = None

    def _write_loop(self) -> None:
        broken = False
        while True:
            item = self.outbox.get()
            try:
                if item is None:
                    return
                due, data = item
                if not broken:
                    delay = due - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                    try:
                        self.sock.sendall(data)
                    except OSError:
                        broken = True  # the peer left; drain the rest without sending
            finally:
                self.outbox.task_done()

    def shutdown(self) -> None:
        """Cut the connection both ways; the serving thread then closes the socket."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already disconnected by the peer: nothing left to cut


class RouterSim:
    """In-process RouterOS API emulator; ``start()`` it, or use it as a context manager."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, user: str = "admin",
                 password: str = "", version: str = "7.16", latency_ms: float = 0,
                 state_file: str | os.PathLike | None = None, factory_defaults: bool = False,
                 clock: str | None = None):
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
        self._connections: set[_Connection] = set()
        self._listener: socket.socket | None = None
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self.port = 0

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
        return self

    def stop(self) -> None:
        """Close the listener and every client connection, join threads, save state."""
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
        self._save()

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
                sock.settimeout(None)
                # one sentence per send: without this, Nagle plus delayed ACKs add 40 ms stalls
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                conn = _Connection(sock, peer[0])
                conn.thread = threading.Thread(target=self._serve, args=(conn,),
                                               name="routeros-sim-conn", daemon=True)
                with self.lock:
                    self._connections.add(conn)
                conn.thread.start()
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

    def _drop_connections(self) -> None:
        with self.lock:
            connections = list(self._connections)
        for conn in connections:
            conn.shutdown()
        current = threading.current_thread()
        for conn in connections:
            if conn.thread is not None and conn.thread is not current:
                conn.thread.join(timeout=5)

    def _save(self) -> None:
        with self.lock:
            if self.state_file and self.state.dirty:
                self.state.save(self.state_file)

    # --- fault injection and inspection -----------------------------------------------------

    def drop_after(self, n: int) -> None:
        """One shot: the connection sending the next replies closes after ``n`` more sentences."""
        with self.lock:
            self._drop_remaining = int(n)

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
        self._save()

    def factory_reset(self) -> None:
        """Drop every connection and return to factory defaults (no hotspot), keeping the API user."""
        self._drop_connections()
        with self.lock:
            self.state.load_factory(True, self.user, self.password)
        self._save()

    def advance(self, seconds: float) -> None:
        """Move the router clock forward: sessions age, reach limits and end."""
        with self.lock:
            self.state.tick(int(seconds))
        self._save()

    def add_traffic(self, user_or_mac: str, bytes_in: int, bytes_out: int) -> int:
        """Count traffic on the active sessions of a user or MAC; returns sessions matched."""
        with self.lock:
            matched = self.state.add_traffic(user_or_mac, int(bytes_in), int(bytes_out))
        self._save()
        return matched

    def rows(self, path: str) -> list[dict]:
        """A menu's rows as the API prints them (dicts of strings), e.g. ``/ip/hotspot/user``."""
        with self.lock:
            return self.state.rows(path)

    @property
    def fetched(self) -> list[dict]:
        """Every ``/tool/fetch`` request received (its attributes)."""
        with self.lock:
            return [dict(item) for item in self.state.fetched]

    # --- one connection ---------------------------------------------------------------------

    def _serve(self, conn: _Connection) -> None:
        try:
            while not self._stopping.is_set():
                words = conn.reader.read_sentence()
                self._answer(conn, words)
        except (ConnectionError, OSError, WireError, _Dropped):
            pass  # the client went away or the emulator cut it: this connection is over
        finally:
            conn.close_writer()
            conn.sock.close()
            with self.lock:
                self._connections.discard(conn)

    def _answer(self, conn: _Connection, words: list[str]) -> None:
        command = words[0]
        attrs = parse_attributes(words[1:])
        tag = attrs.pop(".tag", None)
        queries = [word for word in words[1:] if word.startswith("?")]
        with self.lock:
            self.command_log.append(command)
        if command == "/login":
            replies = self._login(conn, attrs)
        elif not conn.logged_in:
            # UNCONFIRMED: the exact trap for commands sent before logging in
            replies = _trap(SimTrap("not logged in", 5))
        elif command == "/quit":
            self._send(conn, ["!fatal", "session terminated on request"])
            raise _Dropped()
        elif command == "/cancel":
            # commands run one at a time, so nothing is ever left in flight to cancel
            replies = [("!done", {})]
        elif command == "/system/reboot":
            self._send(conn, _sentence("!done", {}, tag))
            self.reboot()
            raise _Dropped()
        else:
            with self.lock:
                try:
                    replies = self.state.execute(command, attrs, queries)
                except SimTrap as trap:
                    replies = _trap(trap)
            self._save()
        for word, values in replies:
            self._send(conn, _sentence(word, values, tag))

    def _login(self, conn: _Connection, attrs: dict) -> list[tuple[str, dict]]:
        name = attrs.get("name")
        if name is None:
            conn.challenge = secrets.token_bytes(16)
            return [("!done", {"ret": conn.challenge.hex()})]
        with self.lock:
            ok = not self.refuse_logins and self._credentials_ok(conn, name, attrs)
            if ok:
                sessions = sum(1 for c in self._connections if c.logged_in and c is not conn)
                if sessions >= self.max_sessions:
                    # UNCONFIRMED: RouterOS' text when the api service is at max-sessions
                    return _trap(SimTrap(f"too many sessions (max-sessions={self.max_sessions})", 5))
                conn.logged_in = True
                for user in self.state.find("/user", name=name):
                    user["last-logged-in"] = self.state.now_text()
        conn.challenge = None
        return [("!done", {})] if ok else _trap(SimTrap(BAD_LOGIN))

    def _credentials_ok(self, conn: _Connection, name: str, attrs: dict) -> bool:
        users = [u for u in self.state.find("/user", name=name) if u.get("disabled") != "true"]
        if not users:
            return False
        user = users[0]
        password = user.get("password", "")
        if "response" in attrs:
            if conn.challenge is None:
                return False
            digest = hashlib.md5(b"\0" + password.encode() + conn.challenge).hexdigest()
            if attrs["response"].lower() != "00" + digest:
                return False
        elif attrs.get("password", "") != password:
            return False
        group = self.state.find("/user/group", name=user.get("group", ""))
        if not group or "api" not in group[0].get("policy", "").split(","):
            return False
        allowed = [a for a in user.get("address", "").split(",") if a]
        return not allowed or any(_in_network(conn.peer, a) for a in allowed)

    def _send(self, conn: _Connection, sentence: list[str]) -> None:
        """Send one reply sentence, ``latency_ms`` after it was produced.

        Latency models the network: it delays each reply but does not stop the router from
        reading and answering the next command, so pipelined commands overlap their waits.
        """
        with self.lock:
            remaining = self._drop_remaining
            drop_before = remaining == 0
            close_after = remaining == 1
            if remaining is not None:
                self._drop_remaining = None if remaining <= 1 else remaining - 1
        if drop_before:
            conn.flush()
            conn.shutdown()
            raise _Dropped()
        data = encode_sentence(sentence)
        if self.latency_ms or conn.has_pending():
            conn.deliver_later(time.monotonic() + self.latency_ms / 1000, data)
        else:
            conn.sock.sendall(data)
        if close_after:
            conn.flush()
            conn.shutdown()
            raise _Dropped()


def _sentence(word: str, values: dict, tag: str | None) -> list[str]:
    sentence = [word] + [f"={name}={value}" for name, value in values.items()]
    if tag is not None:
        sentence.append(f".tag={tag}")
    return sentence


def _trap(trap: SimTrap) -> list[tuple[str, dict]]:
    values = {"message": trap.message}
    if trap.category is not None:
        values["category"] = str(trap.category)
    return [("!trap", values), ("!done", {})]


def _in_network(address: str, network: str) -> bool:
    try:
        return ipaddress.ip_address(address) in ipaddress.ip_network(network, strict=False)
    except ValueError:
        return False


@click.command("router")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8728, show_default=True, type=int, help="API port.")
@click.option("--user", default="admin", show_default=True, help="API user name.")
@click.option("--password", default="", help="API user password (default empty).")
@click.option("--version", "version", default="7.16", show_default=True,
              help="RouterOS version to emulate, e.g. 6.49 or 7.18.")
@click.option("--latency-ms", default=0.0, type=float, help="Delay before every reply sentence.")
@click.option("--state", "state_file", type=click.Path(dir_okay=False), default=None,
              help="JSON file to load the router state from and save it to.")
@click.option("--factory-defaults", is_flag=True, help="Start as a reset router: no bridge, no hotspot.")
def router_command(host, port, user, password, version, latency_ms, state_file, factory_defaults):
    """Run the RouterOS API emulator until Ctrl-C or SIGTERM."""
    stop = threading.Event()
    sim = RouterSim(host=host, port=port, user=user, password=password, version=version,
                    latency_ms=latency_ms, state_file=state_file,
                    factory_defaults=factory_defaults, clock="real")
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    sim.start()
    click.echo(f"RouterOS {version} API emulator listening on {host}:{sim.port} "
               f"(user {user!r}); Ctrl-C to stop")
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        click.echo("stopping")
    finally:
        sim.stop()
        signal.signal(signal.SIGTERM, previous)
