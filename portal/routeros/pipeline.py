"""The router link's shared parts and its pipelined session for bulk work.

``RouterEndpoint`` holds how to reach one router (address, credentials, TLS, timeout)
and names it in every error. ``PipelineSession`` is a raw API connection of our own
(:mod:`.wire`) that sends many tagged sentences before reading the replies:
librouteros has no tags, so it costs one round trip per command, which is too slow
for hundreds of vouchers. See the RouterOS reference sheet, sections 1 and 2.
"""
from __future__ import annotations

import hashlib
import socket
import ssl
from dataclasses import dataclass, field

from ..errors import RouterLoginRefused, RouterUnreachable
from .wire import SocketReader, WireError, encode_sentence, parse_attributes

#: How many tagged commands may be in flight at once: bounds memory and socket buffers.
DEFAULT_WINDOW = 200


@dataclass(frozen=True)
class RouterEndpoint:
    """How to reach one router's API, and how to name it in errors."""

    host: str
    port: int = 8728
    username: str = "admin"
    password: str = ""
    name: str = "router"
    ssl: bool = False
    timeout: float = 5.0
    login_method: str = "plain"

    @property
    def label(self) -> str:
        """``router "site-router" (10.5.50.1:8728)``: how errors name this router."""
        return f'router "{self.name}" ({self.host}:{self.port})'

    def describe(self, command: str, text: str) -> str:
        """An operator message naming the router, the command and what went wrong."""
        return f"{self.label}: {command}: {text}"

    def tls_context(self) -> ssl.SSLContext:
        """TLS for api-ssl; a router without a certificate only offers anonymous DH."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        # The appliance pins the router by address and the API password, not by a
        # certificate: most routers have none, and then only ADH suites are offered.
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.set_ciphers("ADH:HIGH:@SECLEVEL=0")
        return ctx

    def unreachable(self, command: str, exc: BaseException) -> RouterUnreachable:
        """The RouterUnreachable to raise for a socket error or timeout."""
        if isinstance(exc, TimeoutError):
            text = f"no answer within {self.timeout:g}s (connection discarded)"
        else:
            text = f"connection failed: {exc or type(exc).__name__}"
        return RouterUnreachable(self.describe(command, text))


def challenge_response(password: str, challenge_hex: str) -> str:
    """The pre-6.43 login response: ``00`` + md5(NUL + password + challenge)."""
    digest = hashlib.md5(b"\x00" + password.encode("utf-8") + bytes.fromhex(challenge_hex),
                         usedforsecurity=False)
    return "00" + digest.hexdigest()


@dataclass(frozen=True)
class BulkResult:
    """What became of one item of a bulk call."""

    name: str
    status: str  # created | exists | removed | missing | failed
    id: str = ""
    message: str = ""

    @property
    def ok(self) -> bool:
        """True when the router is now as the caller wanted."""
        return self.status != "failed"


@dataclass
class Reply:
    """Everything the router answered to one tagged command."""

    rows: list[dict] = field(default_factory=list)
    ret: str = ""
    trap: str | None = None
    category: int | None = None
    done: bool = False


class _RouterFatal(Exception):
    """The router sent ``!fatal`` and is closing the connection."""


class PipelineSession:
    """One raw API connection for tagged, pipelined commands; use as a context manager."""

    def __init__(self, endpoint: RouterEndpoint):
        self.endpoint = endpoint
        self.sock: socket.socket | None = None
        self.reader: SocketReader | None = None

    def __enter__(self) -> "PipelineSession":
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def open(self) -> None:
        """Connect (TLS when configured) and log in; raises RouterUnreachable/LoginRefused."""
        ep = self.endpoint
        try:
            sock = socket.create_connection((ep.host, ep.port), timeout=ep.timeout)
        except OSError as exc:
            raise ep.unreachable("connect", exc) from exc
        try:
            if ep.ssl:
                sock = ep.tls_context().wrap_socket(sock)
            self.sock = sock
            self.reader = SocketReader(sock)
            self._login()
        except (OSError, WireError, _RouterFatal) as exc:
            self.close()
            if isinstance(exc, _RouterFatal):
                text = f"router closed the session: {exc}"
                raise RouterUnreachable(ep.describe("/login", text)) from exc
            raise ep.unreachable("/login", exc) from exc
        except RouterLoginRefused:
            self.close()
            raise

    def close(self) -> None:
        """Close the socket (idempotent)."""
        if self.sock is not None:
            self.sock.close()
        self.sock = None
        self.reader = None

    def _login(self) -> None:
        ep = self.endpoint
        if ep.login_method == "token":
            reply = self.call("/login", [])
            if reply.trap is None:
                if not reply.ret:
                    raise RouterLoginRefused(ep.describe(
                        "/login", "the router sent no login challenge (use login method plain)"))
                response = challenge_response(ep.password, reply.ret)
                reply = self.call("/login", [f"=name={ep.username}", f"=response={response}"])
        else:
            reply = self.call("/login", [f"=name={ep.username}", f"=password={ep.password}"])
        if reply.trap is not None:
            raise RouterLoginRefused(ep.describe("/login", reply.trap))

    def call(self, command: str, words: list[str]) -> Reply:
        """Send one command and read its whole answer (socket errors propagate)."""
        replies, error = self._exchange([[command, *words]], 1)
        if error is not None:
            raise error
        return replies[0]

    def pipeline(self, sentences: list[list[str]], window: int = DEFAULT_WINDOW
                 ) -> tuple[list[Reply], BaseException | None]:
        """Send every sentence tagged, at most ``window`` in flight; replies in input order.

        Returns the replies and the error that ended the session early (None when every
        command was answered). Unanswered commands have ``done`` False and no trap.
        """
        return self._exchange(sentences, max(1, window))

    def _exchange(self, sentences, window):
        replies = [Reply() for _ in sentences]
        pending: set[int] = set()
        sent = 0
        try:
            if self.sock is None:
                raise ConnectionError("not connected")
            while sent < len(sentences) or pending:
                # Top the window up in one write once half of it has been answered, so
                # the router always has work queued and we make few system calls.
                if sent < len(sentences) and len(pending) <= window // 2:
                    end = min(len(sentences), sent + window - len(pending))
                    payload = b"".join(encode_sentence([*sentences[i], f".tag={i}"])
                                       for i in range(sent, end))
                    self.sock.sendall(payload)
                    pending.update(range(sent, end))
                    sent = end
                self._receive(self.reader.read_sentence(), replies, pending)
        except (OSError, WireError, _RouterFatal) as exc:
            # Out of sync or gone: this socket must never be used again.
            self.close()
            return replies, exc
        return replies, None

    @staticmethod
    def _receive(words: list[str], replies: list[Reply], pending: set[int]) -> None:
        kind = words[0]
        if kind == "!fatal":
            raise _RouterFatal(words[1] if len(words) > 1 else "fatal")
        attrs = parse_attributes(words[1:])
        tag = attrs.pop(".tag", None)
        if tag is None or not tag.isdigit() or int(tag) not in pending:
            raise WireError(f"reply {kind} with unexpected tag {tag!r}")
        reply = replies[int(tag)]
        if kind == "!re":
            reply.rows.append(attrs)
        elif kind == "!trap":
            # Only the first trap counts: it is the one that stopped the command.
            if reply.trap is None:
                reply.trap = attrs.get("message", "")
                category = attrs.get("category", "")
                reply.category = int(category) if category.isdigit() else None
        elif kind == "!done":
            reply.ret = attrs.get("ret", "")
            reply.done = True
            pending.discard(int(tag))
        # "!empty" (7.18+, no rows) carries nothing we need.


def lost_message(endpoint: RouterEndpoint, command: str, error: BaseException | None) -> str:
    """The message for a command the router never answered because the session ended."""
    if isinstance(error, TimeoutError):
        why = f"no answer within {endpoint.timeout:g}s"
    elif isinstance(error, _RouterFatal):
        why = f"router closed the session: {error}"
    else:
        why = f"connection lost: {error or 'closed'}"
    return endpoint.describe(
        command, f"{why}; not known whether the router applied it, run the same call again")
