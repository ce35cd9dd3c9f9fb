"""One API connection to the RouterOS emulator: login, command dispatch, timed replies.

``ApiSession`` reads command sentences from its socket, answers ``/login`` (plain and
the legacy challenge), ``/quit``, ``/cancel`` and ``/system/reboot`` itself, hands every
other command to the router's ``RouterState`` and writes the replies, each one
``latency_ms`` late when the router simulates a slow link. The router (``RouterSim``)
owns the state, the lock and the fault switches the session obeys.
"""
from __future__ import annotations

import hashlib
import ipaddress
import queue
import secrets
import socket
import threading
import time
from typing import TYPE_CHECKING

from portal.sim.routeros_fetch import download
from portal.sim.routeros_menus import SimTrap
from portal.sim.routeros_wire import (
    ProtocolError, SentenceReader, read_command, reply_words, sentence_bytes,
)

if TYPE_CHECKING:
    from portal.sim.routeros import RouterSim

BAD_LOGIN = "invalid user name or password (6)"

Replies = list[tuple[str, dict]]


class SessionEnded(Exception):
    """The emulator closed this connection on purpose (fault injection, quit, reboot)."""


class ApiSession:
    """One client socket, its login state and its queue of delayed replies."""

    def __init__(self, router: "RouterSim", sock: socket.socket, peer: str):
        self.router = router
        self.sock = sock
        self.peer = peer
        self.reader = SentenceReader(sock)
        self.logged_in = False
        self.challenge: bytes | None = None
        self.thread: threading.Thread | None = None
        # Replies delayed by the simulated network latency wait here, so the emulator keeps
        # reading and answering pipelined commands meanwhile, as a router behind a slow link.
        self.outbox: queue.Queue = queue.Queue()
        self.writer: threading.Thread | None = None

    # --- reading and answering -------------------------------------------------------

    def serve(self) -> None:
        """Answer sentences until the peer leaves, the router stops or cuts this session."""
        try:
            while self.router.serving:
                self.answer(self.reader.next_sentence())
        except (ConnectionError, OSError, ProtocolError, SessionEnded):
            pass  # the client went away or the emulator cut it: this connection is over
        finally:
            self.close_writer()
            self.sock.close()
            self.router.forget(self)

    def answer(self, words: list[str]) -> None:
        """Answer one command sentence."""
        router = self.router
        sentence = read_command(words)
        command, attrs, tag = sentence.command, sentence.attributes, sentence.tag
        with router.lock:
            router.command_log.append(command)
        if command == "/login":
            replies = self.login(attrs)
        elif not self.logged_in:
            # UNCONFIRMED: the exact trap for commands sent before logging in
            replies = trap_replies(SimTrap("not logged in", 5))
        elif command == "/quit":
            self.send(["!fatal", "session terminated on request"])
            raise SessionEnded()
        elif command == "/cancel":
            # commands run one at a time, so nothing is ever left in flight to cancel
            replies = [("!done", {})]
        elif command == "/system/reboot":
            self.send(reply_words("!done", {}, tag))
            router.reboot()
            raise SessionEnded()
        else:
            try:
                # A real download, before taking the router's lock (see routeros_fetch).
                body = download(attrs) if command == "/tool/fetch" else None
                with router.lock:
                    replies = router.state.execute(command, attrs, sentence.queries, body)
            except SimTrap as trap:
                replies = trap_replies(trap)
            router.save_state()
        for reply, values in replies:
            self.send(reply_words(reply, values, tag))

    def login(self, attrs: dict) -> Replies:
        """``/login``: a challenge when no name is given, else check the credentials."""
        router = self.router
        name = attrs.get("name")
        if name is None:
            self.challenge = secrets.token_bytes(16)
            return [("!done", {"ret": self.challenge.hex()})]
        with router.lock:
            ok = not router.refuse_logins and self.credentials_ok(name, attrs)
            if ok:
                if router.sessions_logged_in(besides=self) >= router.max_sessions:
                    # UNCONFIRMED: RouterOS' text when the api service is at max-sessions
                    return trap_replies(SimTrap(
                        f"too many sessions (max-sessions={router.max_sessions})", 5))
                self.logged_in = True
                for user in router.state.find("/user", name=name):
                    user["last-logged-in"] = router.state.now_text()
        self.challenge = None
        return [("!done", {})] if ok else trap_replies(SimTrap(BAD_LOGIN))

    def credentials_ok(self, name: str, attrs: dict) -> bool:
        """Password (or challenge response), the api policy and the user's allowed address."""
        state = self.router.state
        users = [u for u in state.find("/user", name=name) if u.get("disabled") != "true"]
        if not users:
            return False
        user = users[0]
        password = user.get("password", "")
        if "response" in attrs:
            if self.challenge is None:
                return False
            digest = hashlib.md5(b"\0" + password.encode() + self.challenge).hexdigest()
            if attrs["response"].lower() != "00" + digest:
                return False
        elif attrs.get("password", "") != password:
            return False
        group = state.find("/user/group", name=user.get("group", ""))
        if not group or "api" not in group[0].get("policy", "").split(","):
            return False
        allowed = [a for a in user.get("address", "").split(",") if a]
        return not allowed or any(_in_network(self.peer, a) for a in allowed)

    # --- writing -----------------------------------------------------------------------

    def send(self, words: list[str]) -> None:
        """Send one reply sentence, ``latency_ms`` after it was produced.

        Latency models the network: it delays each reply but does not stop the router from
        reading and answering the next command, so pipelined commands overlap their waits.
        """
        remaining = self.router.count_down_drop()
        if remaining == 0:
            self.flush()
            self.shutdown()
            raise SessionEnded()
        data = sentence_bytes(words)
        latency_ms = self.router.latency_ms
        if latency_ms or self.has_pending():
            self.deliver_later(time.monotonic() + latency_ms / 1000, data)
        else:
            self.sock.sendall(data)
        if remaining == 1:
            self.flush()
            self.shutdown()
            raise SessionEnded()

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


def trap_replies(trap: SimTrap) -> Replies:
    """``!trap`` with the message (and category, when there is one), then ``!done``."""
    values = {"message": trap.message}
    if trap.category is not None:
        values["category"] = str(trap.category)
    return [("!trap", values), ("!done", {})]


def _in_network(address: str, network: str) -> bool:
    try:
        return ipaddress.ip_address(address) in ipaddress.ip_network(network, strict=False)
    except ValueError:
        return False
