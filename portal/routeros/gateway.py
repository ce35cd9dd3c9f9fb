"""The router gateway: the only code that talks to the MikroTik router.

One ``RouterGateway`` per router. Single commands go over one reused librouteros
connection guarded by a lock; bulk work goes pipelined over a session of our own
(:mod:`.pipeline`, mixed in from :mod:`.bulk`). Every value read from the router stays
the router's own string: voucher code "123456" is never an int, ``true``/``yes`` never a
bool. Ids are looked up by name inside each call and never kept: a reboot renumbers them.
"""
from __future__ import annotations

import os
import select
import ssl
import threading

import librouteros
from librouteros.api import Api
from librouteros.exceptions import LibRouterosError, MultiTrapError, TrapError

from ..errors import RouterLoginRefused, RouterTrap, SessionLimitReached, UserExists
from ..timeutil import format_duration, parse_duration
from .bulk import BulkCommands
from .pipeline import DEFAULT_WINDOW, RouterEndpoint
from .words import (
    ACTIVE, DUPLICATE_USER, HOST, MAX_MAC_COOKIE_SECONDS, NO_SUCH_ITEM, PROFILE, USER,
    WALLED_GARDEN_IP, as_int, router_value, same_value, slow_profile_name, user_words, word,
)

__all__ = ["RouterGateway"]

#: How the router refuses a login past the profile's shared-users.
SESSION_LIMIT = "no more sessions are allowed"


def _attribute(word: str) -> tuple[str, str]:
    """``=name=value`` (or ``.tag=x``) as a pair of strings, value untouched."""
    name, _, value = (word[1:] if word.startswith("=") else word).partition("=")
    return name, value


class _StringApi(Api):
    """librouteros' Api without its value casting: the router's words stay strings."""

    def readSentence(self):  # noqa: N802 - librouteros' name
        """One reply sentence as (reply word, dict of str)."""
        reply_word, words = self.protocol.readSentence()
        return reply_word, dict(_attribute(word) for word in words)

    def readResponse(self):  # noqa: N802 - librouteros' name
        """Rows until ``!done``; traps raised after the ``!done`` keeps the link in sync."""
        traps: list[TrapError] = []
        rows: list[dict] = []
        reply_word = None
        while reply_word != "!done":
            reply_word, attrs = self.readSentence()
            if reply_word == "!trap":
                category = attrs.get("category", "")
                traps.append(TrapError(attrs.get("message", ""),
                                       int(category) if category.isdigit() else None))
            elif reply_word in ("!re", "!done") and attrs:
                rows.append(attrs)
        if len(traps) > 1:
            raise MultiTrapError(*traps)
        if traps:
            raise traps[0]
        return rows


class RouterGateway(BulkCommands):
    """Every RouterOS call of the appliance: reused connection, timeouts, named errors."""

    def __init__(self, host, port=8728, username="admin", password="", *, name="router",
                 ssl=False, timeout=5.0, login_method="plain", hotspot_server="hotspot1"):
        if login_method not in ("plain", "token"):
            raise ValueError(f"login_method must be 'plain' or 'token', not {login_method!r}")
        self.endpoint = RouterEndpoint(host=str(host), port=int(port), username=str(username),
                                       password=str(password), name=str(name), ssl=bool(ssl),
                                       timeout=float(timeout), login_method=login_method)
        self.hotspot_server = hotspot_server or ""
        self.bulk_window = DEFAULT_WINDOW
        self._lock = threading.RLock()
        self._api: _StringApi | None = None
        self._api_pid = 0
        self._version: str | None = None
        self._board: str | None = None

    @classmethod
    def from_settings(cls, config) -> "RouterGateway":
        """A gateway from the ``ROUTER_*`` and ``HOTSPOT_SERVER`` settings."""
        return cls(config.get("ROUTER_HOST", "192.168.88.1"),
                   int(config.get("ROUTER_PORT", 8728) or 8728),
                   config.get("ROUTER_USER", "admin"),
                   config.get("ROUTER_PASSWORD", "") or "",
                   name=config.get("ROUTER_NAME", "router") or "router",
                   ssl=bool(config.get("ROUTER_SSL", False)),
                   timeout=float(config.get("ROUTER_TIMEOUT", 5.0) or 5.0),
                   login_method=config.get("ROUTER_LOGIN_METHOD", "plain") or "plain",
                   hotspot_server=config.get("HOTSPOT_SERVER", "hotspot1"))

    def __enter__(self) -> "RouterGateway":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<RouterGateway {self.endpoint.label}>"

    @property
    def label(self) -> str:
        """How errors name this router."""
        return self.endpoint.label

    # --- the connection --------------------------------------------------------------

    def close(self) -> None:
        """Close the reused connection (the next call opens a new one)."""
        with self._lock:
            self._discard()

    def _discard(self) -> None:
        api, self._api = self._api, None
        self._version = self._board = None
        if api is not None:
            api.close()

    def _connect(self) -> _StringApi:
        ep = self.endpoint
        try:
            return librouteros.connect(
                ep.host, ep.username, ep.password, port=ep.port, timeout=ep.timeout,
                subclass=_StringApi, encoding="utf-8",
                ssl_wrapper=ep.tls_context().wrap_socket if ep.ssl else None,
                login_method=librouteros.token if ep.login_method == "token" else librouteros.plain)
        except (TrapError, MultiTrapError) as exc:
            raise RouterLoginRefused(ep.describe("/login", str(exc))) from exc
        except (OSError, LibRouterosError) as exc:
            raise ep.unreachable("connect", exc) from exc

    def _stale(self, api: _StringApi) -> bool:
        """True when an idle connection was closed by the router or holds stray bytes."""
        sock = api.protocol.transport.sock
        readable, _, _ = select.select([sock], [], [], 0)
        if not readable:
            return False
        if not isinstance(sock, ssl.SSLSocket):
            return True  # end of stream, or bytes nobody asked for: out of sync either way
        # TLS 1.3 session tickets make the socket readable without any API data.
        sock.setblocking(False)
        try:
            sock.recv(1)
        except ssl.SSLWantReadError:
            return False
        except OSError:
            return True
        finally:
            sock.settimeout(self.endpoint.timeout)
        return True

    def _connection(self) -> _StringApi:
        # A connection inherited through fork (gunicorn workers) is shared with the
        # parent: closing our copy of the descriptor leaves the parent's link intact.
        if self._api is not None and (self._api_pid != os.getpid() or self._stale(self._api)):
            self._discard()
        if self._api is None:
            self._api = self._connect()
            self._api_pid = os.getpid()
        return self._api

    def _run(self, command: str, words=(), *, idempotent: bool = False) -> list[dict]:
        """Send one command on the shared connection; rows as dicts of str.

        A socket error discards the connection; an idempotent read is then tried once
        more on a new one. A timeout is never retried: the caller already waited.
        """
        with self._lock:
            retries = 1 if idempotent else 0
            while True:
                api = self._connection()
                try:
                    return list(api.rawCmd(command, *words))
                except TrapError as exc:
                    raise self._trap(command, exc.message, exc.category) from exc
                except MultiTrapError as exc:
                    raise self._trap(command, str(exc), exc.traps[0].category) from exc
                except TimeoutError as exc:
                    self._discard()
                    raise self.endpoint.unreachable(command, exc) from exc
                except (OSError, LibRouterosError) as exc:
                    self._discard()
                    if retries:
                        retries -= 1
                        continue
                    raise self.endpoint.unreachable(command, exc) from exc

    def _trap(self, command: str, message: str, category: int | None) -> RouterTrap:
        cls = RouterTrap
        if command == f"{USER}/add" and message == DUPLICATE_USER:
            cls = UserExists
        elif command == f"{ACTIVE}/login" and message.startswith(SESSION_LIMIT):
            cls = SessionLimitReached
        return cls(self.endpoint.describe(command, message), router_message=message,
                   category=category)

    # --- the router itself -----------------------------------------------------------

    def health(self) -> dict:
        """Identity, version, board, CPU load, memory and uptime of the router."""
        with self._lock:
            resource = self._run("/system/resource/print", idempotent=True)[0]
            identity = self._run("/system/identity/print", idempotent=True)[0]
            self._version = resource.get("version", "")
            self._board = resource.get("board-name", "")
        uptime = resource.get("uptime", "0s")
        try:
            uptime_seconds = parse_duration(uptime)
        except ValueError:
            uptime_seconds = None
        return {
            "name": self.endpoint.name, "host": self.endpoint.host, "port": self.endpoint.port,
            "identity": identity.get("name", ""), "version": self._version,
            "board": self._board, "architecture": resource.get("architecture-name", ""),
            "cpu_load": as_int(resource.get("cpu-load")),
            "free_memory": as_int(resource.get("free-memory")),
            "total_memory": as_int(resource.get("total-memory")),
            "uptime": uptime, "uptime_seconds": uptime_seconds,
        }

    def version(self) -> str:
        """RouterOS version as the router prints it, e.g. ``7.16 (stable)``."""
        with self._lock:
            if self._version is None or self._api is None:
                row = self._run("/system/resource/print", ["=.proplist=version,board-name"],
                                idempotent=True)[0]
                self._version, self._board = row.get("version", ""), row.get("board-name", "")
            return self._version

    def board(self) -> str:
        """The router's board name, e.g. ``RB5009UG+S+``."""
        with self._lock:
            self.version()
            return self._board or ""

    def version_tuple(self) -> tuple[int, int]:
        """``(major, minor)`` of the RouterOS version, e.g. ``(7, 16)``."""
        numbers = self.version().split(" ")[0].split(".")
        major = as_int(numbers[0])
        minor = as_int("".join(ch for ch in (numbers[1] if len(numbers) > 1 else "0")
                             if ch.isdigit()))
        return major, minor

    # --- profiles --------------------------------------------------------------------

    def profiles(self) -> list[dict]:
        """Every hotspot user profile."""
        return self._run(f"{PROFILE}/print", idempotent=True)

    def ensure_profile(self, package) -> str:
        """Create or update the user profile of ``package`` (and, for a fair-use package,
        its slow profile ``<name>-slow`` at ``fair_use_rate``); writes only what differs."""
        name = str(package.profile_name)
        validity = int(package.validity_seconds or 0)
        cookie = min(validity, MAX_MAC_COOKIE_SECONDS) if validity > 0 else MAX_MAC_COOKIE_SECONDS
        wanted = {"rate-limit": package.rate_limit or "",
                  "shared-users": str(int(package.devices or 1)),
                  "add-mac-cookie": "yes", "mac-cookie-timeout": format_duration(cookie)}
        with self._lock:
            self._ensure_profile_row(name, wanted)
            slow_rate = getattr(package, "fair_use_rate", "") or ""
            if slow_rate:
                self._ensure_profile_row(slow_profile_name(name),
                                         {**wanted, "rate-limit": slow_rate})
        return name

    def _ensure_profile_row(self, name: str, wanted: dict) -> None:
        rows = self._run(f"{PROFILE}/print", [f"?name={name}"], idempotent=True)
        if not rows:
            words = [word("name", name)] + [word(k, v) for k, v in wanted.items() if v]
            self._run(f"{PROFILE}/add", words)
            return
        current = rows[0]
        changes = [word(k, v) for k, v in wanted.items()
                   if not same_value(k, current.get(k), v)]
        if changes:
            self._run(f"{PROFILE}/set", [word(".id", current[".id"]), *changes])

    # --- users -----------------------------------------------------------------------

    def add_user(self, name, password, profile, *, limit_uptime=None, limit_bytes_total=None,
                 comment="", disabled=False) -> str:
        """Add a hotspot user; returns its ``.id``; UserExists when the name is taken."""
        rows = self._run(f"{USER}/add", user_words(name, password, profile, limit_uptime,
                                                    limit_bytes_total, comment, bool(disabled)))
        return rows[0].get("ret", "") if rows else ""

    def ensure_user(self, name, password, profile, *, limit_uptime=None,
                    limit_bytes_total=None, comment="", disabled=None) -> str:
        """Add the user, or bring the existing one in line (no write when equal); its id.
        ``disabled`` None leaves an existing user's flag as it is."""
        with self._lock:
            try:
                return self.add_user(name, password, profile, limit_uptime=limit_uptime,
                                     limit_bytes_total=limit_bytes_total, comment=comment,
                                     disabled=bool(disabled))
            except UserExists:
                current = self.user(name)
                if current is None:
                    raise  # removed between our add and our print: let the caller retry
            wanted = {"password": str(password), "profile": str(profile)}
            if limit_uptime:
                wanted["limit-uptime"] = router_value("limit-uptime", limit_uptime)
            if limit_bytes_total is not None:
                # 0 clears a cap (a fair-use grant moved to its slow profile has none)
                wanted["limit-bytes-total"] = router_value("limit-bytes-total", limit_bytes_total)
            if comment:
                wanted["comment"] = str(comment)
            if disabled is not None:
                wanted["disabled"] = "yes" if disabled else "no"
            changes = [word(k, v) for k, v in wanted.items()
                       if not same_value(k, current.get(k), v)]
            if changes:
                self._run(f"{USER}/set", [word(".id", current[".id"]), *changes])
            return current[".id"]

    def update_user(self, name, **fields) -> None:
        """Set fields of a user found by name (``limit_uptime=3600``, ``disabled=True`` ...)."""
        if not fields:
            return
        words = [word(key.replace("_", "-"), router_value(key.replace("_", "-"), value))
                 for key, value in fields.items()]
        with self._lock:
            current = self.user(name, proplist=".id,name")
            if current is None:
                text = f'{NO_SUCH_ITEM} (user "{name}")'
                raise RouterTrap(self.endpoint.describe(f"{USER}/set", text),
                                 router_message=NO_SUCH_ITEM, category=0)
            self._run(f"{USER}/set", [word(".id", current[".id"]), *words])

    def remove_user(self, name) -> bool:
        """Remove a user by name; False when it was not there."""
        with self._lock:
            rows = self._run(f"{USER}/print", ["=.proplist=.id", f"?name={name}"], idempotent=True)
            if not rows:
                return False
            try:
                self._run(f"{USER}/remove", [word(".id", ",".join(r[".id"] for r in rows))])
            except RouterTrap as exc:
                if exc.router_message == NO_SUCH_ITEM:
                    return False
                raise
        return True

    def users(self, proplist=None) -> list[dict]:
        """Every hotspot user (values are the router's strings)."""
        return self._run(f"{USER}/print", self._proplist(proplist), idempotent=True)

    def user(self, name, proplist=None) -> dict | None:
        """One hotspot user by name, or None."""
        rows = self._run(f"{USER}/print", [*self._proplist(proplist), f"?name={name}"],
                         idempotent=True)
        return rows[0] if rows else None

    @staticmethod
    def _proplist(proplist) -> list[str]:
        if not proplist:
            return []
        names = proplist.split(",") if isinstance(proplist, str) else list(proplist)
        return [f"=.proplist={','.join(str(n) for n in names)}"]

    # --- sessions --------------------------------------------------------------------

    def active_sessions(self, proplist=None) -> list[dict]:
        """Logged-in hotspot clients (of ``hotspot_server`` when one is set)."""
        words = self._proplist(proplist)
        if self.hotspot_server:
            words.append(f"?server={self.hotspot_server}")
        return self._run(f"{ACTIVE}/print", words, idempotent=True)

    def hotspot_hosts(self, address) -> list[dict]:
        """The router's own hotspot host rows for a client address: ``mac-address``,
        ``address`` and ``authorized`` (the router's strings); none when it has no such host.

        What a phone claims about itself is checked against this: the router saw the MAC
        behind the address, the phone only says so.
        """
        return self._run(f"{HOST}/print", ["=.proplist=mac-address,address,authorized",
                                           f"?address={address}"], idempotent=True)

    def login(self, username, password, ip, mac) -> None:
        """Log a client device (ip + mac) in as a hotspot user, server side."""
        self._run(f"{ACTIVE}/login", [word("user", username), word("password", password),
                                      word("ip", ip), word("mac-address", mac)])

    def kick(self, active_id) -> None:
        """Log one active session out by its ``.id`` (from active_sessions, this boot)."""
        self._run(f"{ACTIVE}/remove", [word(".id", active_id)])

    def kick_user(self, username) -> int:
        """Log every session of a user out; returns how many were removed."""
        removed = 0
        with self._lock:
            rows = self._run(f"{ACTIVE}/print", ["=.proplist=.id", f"?user={username}"],
                             idempotent=True)
            for row in rows:
                try:
                    self._run(f"{ACTIVE}/remove", [word(".id", row[".id"])])
                except RouterTrap as exc:
                    if exc.router_message != NO_SUCH_ITEM:
                        raise
                    continue  # the session ended by itself meanwhile: nothing to kick
                removed += 1
        return removed

    # --- any menu (provisioning and the technician's checks) ---------------------------

    def menu_rows(self, menu: str, where: dict | None = None) -> list[dict]:
        """Rows of any menu, e.g. ``/ip/hotspot/profile`` (``where``: equal fields)."""
        words = [f"?{name}={value}" for name, value in (where or {}).items()]
        return self._run(f"{menu}/print", words, idempotent=True)

    def command(self, command: str, attrs: dict | None = None) -> list[dict]:
        """Run any command (``/ip/service/set``) with attributes; the reply rows."""
        return self._run(command, [word(name, value) for name, value in (attrs or {}).items()])

    # --- walled garden ---------------------------------------------------------------

    def walled_garden_ip(self, dst_address, comment="") -> str:
        """Allow hotspot clients to reach ``dst_address`` before login; returns the id."""
        with self._lock:
            rows = self._run(f"{WALLED_GARDEN_IP}/print",
                             ["=.proplist=.id", f"?dst-address={dst_address}"], idempotent=True)
            if rows:
                return rows[0][".id"]
            words = [word("dst-address", dst_address), word("action", "accept")]
            if comment:
                words.append(word("comment", comment))
            rows = self._run(f"{WALLED_GARDEN_IP}/add", words)
        return rows[0].get("ret", "") if rows else ""
