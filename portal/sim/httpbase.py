"""What every HTTP emulator shares: its threaded server and its outgoing POSTs.

``EmulatorServer`` serves one emulator (``owner``) with non-daemon request threads, so
``server_close()`` waits for the requests in hand; an IPv6 host works too.
``post_bytes`` POSTs to a callback or report URL **as written** (``request_target``): an
HTTP library that re-quotes URLs would turn ``%7E`` into ``~`` or upper-case ``%2f``,
and a receiver that signs or looks up an opaque reference in its URL must see what it
sent. Standard library only.
"""
from __future__ import annotations

import http.client
import socket
import ssl
import threading
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit


class EmulatorServer(ThreadingHTTPServer):
    """A ThreadingHTTPServer for ``owner`` (the emulator its handler calls back)."""

    # Non-daemon request threads, so server_close() joins every one of them.
    daemon_threads = False
    block_on_close = True

    def __init__(self, address: tuple[str, int], handler: type, owner: Any):
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, handler)
        self.owner = owner


class Serving:
    """An ``EmulatorServer`` for ``owner`` on ``host:port`` (0: any free port), served by a
    thread of its own from construction until ``stop()``."""

    def __init__(self, host: str, port: int, handler: type, owner: Any, name: str):
        self.server = EmulatorServer((host, port), handler, owner)
        #: The bound port.
        self.port: int = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, name=name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and wait for the requests in hand."""
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)


def base_url(host: str, port: int) -> str:
    """``http://host:port``, an IPv6 host in brackets."""
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def request_target(url: str) -> str:
    """The request target of ``url`` as written: its path and query (never the fragment)."""
    rest = url.split("://", 1)[1]
    start = min([i for i in (rest.find("/"), rest.find("?"), rest.find("#")) if i >= 0],
                default=len(rest))
    target = rest[start:].split("#", 1)[0]
    return target if target.startswith("/") else "/" + target


def post_bytes(url: str, payload: bytes, headers: dict[str, str],
               timeout: float) -> tuple[int, bytes]:
    """POST ``payload`` to ``url`` unchanged; returns the HTTP status and the answer's body.

    Raises OSError (no connection, timeout), http.client.HTTPException (a broken answer)
    or ValueError (a URL that is not http(s) or cannot go on the request line).
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    if parts.scheme == "https":
        connection = http.client.HTTPSConnection(
            parts.hostname, parts.port, timeout=timeout, context=ssl.create_default_context())
    else:
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        connection.request("POST", request_target(url), body=payload, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()
