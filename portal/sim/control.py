"""The emulators' HTTP control interface: a small JSON server on a port of its own.

Each emulator (``RouterSim``, ``DarajaSim``) describes its controls as a list of
``Route``s, each a method, a path pattern and a function that calls the emulator's own
in-process methods, so tests and the HTTP interface share one implementation. This
module only serves them: JSON in, JSON out, ``{"error": "..."}`` with a 4xx status when
a request is wrong. Path patterns are literal segments, ``<name>`` (one segment) and
``<path:name>`` (the rest of the path). Standard library only.
"""
from __future__ import annotations

import functools
import json
import logging
import math
import re
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any, Callable
from urllib.parse import parse_qsl, unquote, urlsplit

from .httpbase import Serving, base_url

log = logging.getLogger("kibanda.sim.control")

#: The largest request body the control server reads.
MAX_BODY = 64 * 1024


class ControlError(Exception):
    """A control request that cannot be carried out: answered ``{"error": message}``."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


@dataclass
class ControlRequest:
    """What a route function is given: path parameters, query and JSON body."""

    params: dict[str, str]
    query: dict[str, str]
    body: dict[str, Any]


#: A route function returns the JSON answer (status 200) or ``(status, answer)``.
Handler = Callable[[ControlRequest], Any]


@dataclass(frozen=True)
class Route:
    """One control endpoint: ``Route("POST", "/hosts", add_host)``."""

    method: str
    pattern: str
    handler: Handler

    def match(self, path: str) -> dict[str, str] | None:
        """The path parameters when ``path`` fits this route's pattern, else None."""
        found = _compiled(self.pattern).fullmatch(path)
        return None if found is None else {k: unquote(v) for k, v in found.groupdict().items()}


@functools.lru_cache(maxsize=None)
def _compiled(pattern: str) -> re.Pattern:
    regex = ""
    for part in re.split(r"(<(?:path:)?\w+>)", pattern):
        parameter = re.fullmatch(r"<(path:)?(\w+)>", part)
        if parameter is None:
            regex += re.escape(part)
        else:
            regex += f"(?P<{parameter[2]}>{'.+' if parameter[1] else '[^/]+'})"
    return re.compile(regex)


class ControlServer:
    """Serves ``routes`` on ``host:port`` (0: any free port) in background threads."""

    def __init__(self, host: str, port: int, routes: list[Route], name: str = "control"):
        self.host, self.requested_port = host, port
        self.routes = list(routes)
        self.name = name
        self.port = 0
        self._serving: Serving | None = None

    def start(self) -> "ControlServer":
        """Bind and serve; ``port`` is the bound port afterwards."""
        self._serving = Serving(self.host, self.requested_port, _Handler, self,
                                f"{self.name}-http")
        self.port = self._serving.port
        return self

    def stop(self) -> None:
        """Stop serving and wait for the requests in hand."""
        if self._serving is not None:
            self._serving.stop()
            self._serving = None

    def answer(self, method: str, target: str, raw_body: bytes) -> tuple[int, Any]:
        """The status and JSON answer to one request."""
        split = urlsplit(target)
        matched = [(route, route.match(split.path)) for route in self.routes]
        matched = [(route, params) for route, params in matched if params is not None]
        if not matched:
            return 404, {"error": f"no control at {split.path}"}
        chosen = [(route, params) for route, params in matched if route.method == method]
        if not chosen:
            allowed = sorted({route.method for route, _ in matched})
            return 405, {"error": f"{method} not allowed here; use {', '.join(allowed)}"}
        route, params = chosen[0]
        try:
            body = json.loads(raw_body) if raw_body.strip() else {}
        except ValueError:
            return 400, {"error": "the body is not JSON"}
        if not isinstance(body, dict):
            return 400, {"error": "the body must be a JSON object"}
        request = ControlRequest(params, dict(parse_qsl(split.query, keep_blank_values=True)),
                                 body)
        try:
            result = route.handler(request)
        except ControlError as refused:
            return refused.status, {"error": refused.message}
        if isinstance(result, tuple):
            return result
        return 200, result


class Controllable:
    """Mixed into an emulator: its optional control interface, started and stopped with it.

    The emulator sets ``host``, ``_requested_control_port`` (None: off, 0: any free port)
    and ``_control = None`` in its constructor, and has ``stop()``.
    """

    control_port: int | None = None

    def _start_control(self, routes: list, name: str) -> None:
        """Serve ``routes`` when a control port was asked for; a taken port stops the emulator."""
        if self._requested_control_port is None:
            return
        control = ControlServer(self.host, self._requested_control_port, routes, name)
        try:
            self.control_port = control.start().port
        except OSError:
            self.stop()  # the control port is taken: do not leave the emulator running
            raise
        self._control = control

    def _stop_control(self) -> None:
        if self._control is not None:
            self._control.stop()
            self._control = None

    @property
    def control_url(self) -> str | None:
        """The HTTP control interface, e.g. ``http://127.0.0.1:54321`` (None when off)."""
        if self._control is None:
            return None
        return base_url(self.host, self.control_port)


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.0: one request per connection, so no idle keep-alive thread outlives stop().
    protocol_version = "HTTP/1.0"
    server_version = "KibandaEmulatorControl/1.0"
    timeout = 5

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self._send(413, {"error": f"the body is over {MAX_BODY} bytes"})
            return
        raw = self.rfile.read(length) if length else b""
        status, answer = self.server.owner.answer(self.command, self.path, raw)
        self._send(status, answer)

    do_GET = do_POST = do_PUT = do_DELETE = _serve  # noqa: N815 - http.server's naming

    def _send(self, status: int, answer: Any) -> None:
        payload = (json.dumps(answer, indent=1) + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format, *args):  # noqa: A002 - signature from http.server
        log.debug("%s %s", self.address_string(), format % args)


# --- reading a request's values -------------------------------------------------------

_MISSING = object()


def field(body: dict, name: str, kind: type | tuple, default: Any = _MISSING) -> Any:
    """``body[name]`` checked against ``kind`` (400 when missing or of another type).

    Numbers: ``int`` accepts whole numbers only, ``float`` any finite number; ``true`` and
    ``false`` are not numbers here.
    """
    if name not in body:
        if default is _MISSING:
            raise ControlError(400, f"{name} is missing")
        return default
    value = body[name]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:
        raise ControlError(400, f"{name} must be {_kind_words(kinds)}")
    if float in kinds and isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise ControlError(400, f"{name} must be a finite number")
        return value
    if not isinstance(value, kinds):
        raise ControlError(400, f"{name} must be {_kind_words(kinds)}")
    return value


def non_negative(name: str, value: float) -> float:
    """``value`` when it is 0 or more (400 otherwise)."""
    if value < 0:
        raise ControlError(400, f"{name} must be 0 or more")
    return value


def unknown_fields(body: dict, known: set[str]) -> None:
    """400 when the body names a field this control does not know (a typo stays visible)."""
    unknown = sorted(set(body) - known)
    if unknown:
        raise ControlError(400, f"unknown field {unknown[0]}; known: {', '.join(sorted(known))}")


def _kind_words(kinds: tuple) -> str:
    words = {int: "a whole number", float: "a number", str: "a string", bool: "true or false",
             type(None): "null", list: "a list", dict: "an object"}
    return " or ".join(words.get(k, k.__name__) for k in kinds)
