"""Hotspot behaviour of the RouterOS emulator: logins, sessions, counters, fetch.

Mixed into ``RouterState``; works on its stored rows (canonical strings: durations in
seconds, booleans "true"/"false"). User counters only grow when a session ends, as on
a real router; live usage is on ``/ip/hotspot/active``.
"""
from __future__ import annotations

import hashlib
import ipaddress
import posixpath
import re

from portal.sim.routeros_menus import SimTrap

_ACTIVE = "/ip/hotspot/active"
_USER = "/ip/hotspot/user"
_HOST = "/ip/hotspot/host"
_QUEUE = "/queue/simple"
_MAC = re.compile(r"[0-9A-Fa-f]{2}([:-])[0-9A-Fa-f]{2}(\1[0-9A-Fa-f]{2}){4}")
_COUNTERS = ("bytes-in", "bytes-out", "packets-in", "packets-out")


def _seconds(value: str | None) -> int | None:
    """Stored duration to seconds; None for unset or "none"."""
    if value is None or value == "none":
        return None
    return int(value)


class NoHotspotServer(ValueError):
    """No enabled hotspot server: a device has no hotspot network to join."""


def _ipv4(text: str) -> str:
    """A hotspot client's address (the hotspot is IPv4 only); ValueError otherwise."""
    try:
        return str(ipaddress.IPv4Address(str(text).strip()))
    except ValueError:
        raise ValueError(f"not an IPv4 address: {text!r}") from None


def _mac(text: str) -> str:
    """A MAC as the router prints it (``AA:BB:CC:DD:EE:FF``); ValueError otherwise."""
    text = str(text).strip()
    if not _MAC.fullmatch(text):
        raise ValueError(f"not a MAC address: {text!r}")
    return text.replace("-", ":").upper()


class HotspotMixin:
    """Commands and clock-driven behaviour of ``/ip/hotspot/*`` and ``/tool/fetch``."""

    tables: dict

    def extra_command(self, menu, verb: str, attrs: dict,
                      body: bytes | None = None) -> list[tuple[str, dict]]:
        """Menu-specific commands: active login, user reset-counters, tool fetch, sign."""
        if (menu.path, verb) == (_ACTIVE, "login"):
            self.hotspot_login(attrs)
        elif (menu.path, verb) == (_USER, "reset-counters"):
            for row in self.targets(menu, attrs):
                row["uptime"] = "0"
                row.update({name: "0" for name in _COUNTERS})
            self.dirty = True
        elif (menu.path, verb) == ("/tool", "fetch"):
            return self.fetch(attrs, body)
        elif (menu.path, verb) == ("/certificate", "sign"):
            for row in self.targets(menu, attrs):
                # a self-signed certificate: it has its key and the router trusts it
                row.update({"private-key": "true", "trusted": "true",
                            "fingerprint": hashlib.sha256(row["name"].encode()).hexdigest()})
            self.dirty = True
        else:
            raise SimTrap("no such command", 0)
        return [("!done", {})]

    # --- login and logout ----------------------------------------------------------------

    def hotspot_server_for(self, address: str) -> dict | None:
        """The hotspot server a client address belongs to (first enabled one here)."""
        servers = [row for row in self.tables["/ip/hotspot"] if row.get("disabled") != "true"]
        return servers[0] if servers else None

    def hotspot_login(self, attrs: dict) -> None:
        """``/ip/hotspot/active/login``: authorise a client ip+mac as a hotspot user."""
        unknown = set(attrs) - {"user", "password", "ip", "mac-address", "domain"}
        if unknown:
            raise SimTrap(f"unknown parameter {sorted(unknown)[0]}", 1)  # UNCONFIRMED text
        missing = [name for name in ("user", "ip") if not attrs.get(name)]
        if missing:
            raise SimTrap(f"missing value(s) of argument(s) {' '.join(missing)}", 1)
        name, ip = attrs["user"], attrs["ip"]
        mac = attrs.get("mac-address", "").upper()
        for session in self.tables[_ACTIVE]:
            if session.get("address") == ip and session.get("mac-address", "") == mac:
                if session.get("user") == name:
                    return  # already logged in as this user: nothing changes
                # a different user on the same device replaces the old session
                self.end_session(session)
                break
        server = self.hotspot_server_for(ip)
        if server is None:
            # UNCONFIRMED: text when no hotspot server serves the address
            raise SimTrap("no hotspot server found for this address")
        user = self._login_user(name, server["name"])
        # UNCONFIRMED: the API trap reuses the hotspot errors.txt texts below
        if user is None or user.get("disabled") == "true" \
                or user.get("password", "") != attrs.get("password", ""):
            raise SimTrap("invalid username or password")
        if user.get("mac-address") and user["mac-address"].upper() != mac:
            raise SimTrap(f"user {name} is not allowed to log in from this MAC address")
        profile = next(iter(self.find("/ip/hotspot/user/profile", name=user.get("profile", "default"))), {})
        sessions = self.find(_ACTIVE, user=name)
        shared = profile.get("shared-users", "1")
        if shared != "unlimited" and len(sessions) >= int(shared):
            raise SimTrap(f"no more sessions are allowed for user {name}")
        limit = _seconds(user.get("limit-uptime"))
        if limit is not None and int(user.get("uptime", "0")) >= limit:
            raise SimTrap(f"user {name} has reached uptime limit")
        # limit-bytes-total=0 means no limit (reference sheet, hotspot user menu)
        total = int(user.get("limit-bytes-total") or 0)
        if total and int(user["bytes-in"]) + int(user["bytes-out"]) >= total:
            raise SimTrap(f"user {name} has reached traffic limit")
        values = {"server": server["name"], "user": name, "address": ip, "mac-address": mac,
                  # UNCONFIRMED: what login-by a session started over the API shows
                  "login-by": "http-pap", "uptime": "0", "idle-time": "0",
                  "idle-timeout": profile.get("idle-timeout", "none"),
                  "keepalive-timeout": profile.get("keepalive-timeout", "120")}
        if attrs.get("domain"):
            values["domain"] = attrs["domain"]
        for limit_name in ("limit-bytes-in", "limit-bytes-out", "limit-bytes-total"):
            if int(user.get(limit_name) or 0):
                values[limit_name] = user[limit_name]
        session = self.insert(_ACTIVE, values)
        self._update_time_left(session)
        self._add_session_queue(session, profile.get("rate-limit") or "")
        self._authorize_host(server["name"], ip, mac, True)
        if profile.get("add-mac-cookie") == "true" and mac and self.accepts_mac_cookie(server):
            for cookie in self.find("/ip/hotspot/cookie", **{"mac-address": mac}):
                self.tables["/ip/hotspot/cookie"].remove(cookie)
            cookie = {"user": name, "mac-address": mac, "mac-cookie": "true",
                      "expires-in": profile.get("mac-cookie-timeout", "259200")}
            if attrs.get("domain"):
                cookie["domain"] = attrs["domain"]
            self.insert("/ip/hotspot/cookie", cookie)

    def accepts_mac_cookie(self, server: dict) -> bool:
        """True when the server's hotspot profile has ``mac-cookie`` in its login-by."""
        profile = next(iter(self.find("/ip/hotspot/profile",
                                      name=server.get("profile", "default"))), {})
        return "mac-cookie" in profile.get("login-by", "").split(",")

    def mac_cookie_login(self, server: dict, ip: str, mac: str) -> bool:
        """A returning device with a live mac cookie is let in without any page; True if so."""
        if not self.accepts_mac_cookie(server):
            return False
        for cookie in self.find("/ip/hotspot/cookie", **{"mac-address": mac}):
            user = self._login_user(cookie.get("user", ""), server["name"])
            if user is None:
                continue
            try:
                self.hotspot_login({"user": user["name"], "password": user.get("password", ""),
                                    "ip": ip, "mac-address": mac})
            except SimTrap:
                return False  # limits reached or the user is disabled: the login page it is
            for session in self.find(_ACTIVE, address=ip, **{"mac-address": mac}):
                session["login-by"] = "mac-cookie"
            return True
        return False
    def page_login(self, user: str, password: str, ip: str, mac: str) -> dict:
        """A device logs in on the router's own login page (no portal involved): the same
        checks as ``/ip/hotspot/active/login``, the session shows ``login-by`` http-chap.
        Returns the session as the API prints it; SimTrap with the router's words if refused."""
        ip, mac = _ipv4(ip), _mac(mac)
        self.hotspot_login({"user": str(user), "password": str(password), "ip": ip,
                            "mac-address": mac})
        session = next(s for s in self.tables[_ACTIVE]
                       if s.get("address") == ip and s.get("mac-address") == mac)
        session["login-by"] = "http-chap"
        return self.render(_ACTIVE, session)

    def _login_user(self, name: str, server: str) -> dict | None:
        for user in self.tables[_USER]:
            if user.get("name") == name and user.get("server", "all") in ("all", server):
                return user
        return None

    def _authorize_host(self, server: str, ip: str, mac: str, authorized: bool) -> None:
        hosts = [h for h in self.tables[_HOST]
                 if h.get("mac-address") == mac and h.get("address") == ip]
        if hosts:
            hosts[0]["authorized"] = "true" if authorized else "false"
        elif authorized:
            self._insert_host(server, ip, mac, authorized=True)

    def _insert_host(self, server: str, ip: str, mac: str, authorized: bool) -> dict:
        # UNCONFIRMED: the reference sheet names found-by but not its text for a DHCP client
        return self.insert(_HOST, {
            "mac-address": mac, "address": ip, "to-address": ip, "server": server,
            "found-by": f"DHCP {ip}", "authorized": "true" if authorized else "false"})

    # --- devices joining and leaving the hotspot network -------------------------------

    def host_joins(self, ip: str, mac: str) -> dict:
        """A device got a DHCP lease: its row in ``/ip/hotspot/host``, not authorized.

        The same ip and mac again changes nothing; an ip that another device held is that
        device's no more (its host row goes, and with it its session). Returns the row as
        the API prints it. ValueError for a malformed ip or mac (NoHotspotServer, a
        ValueError too, when no hotspot server runs).
        """
        ip, mac = _ipv4(ip), _mac(mac)
        for host in list(self.tables[_HOST]):
            if host.get("address") == ip and host.get("mac-address") == mac:
                return self.render(_HOST, host)
            if host.get("address") == ip:
                self.before_remove(_HOST, host)
                self.tables[_HOST].remove(host)
        server = self.hotspot_server_for(ip)
        if server is None:
            raise NoHotspotServer("no hotspot server is running: a device cannot join")
        host = self._insert_host(server["name"], ip, mac, authorized=False)
        self.mac_cookie_login(server, ip, mac)
        return self.render(_HOST, host)

    def host_leaves(self, who: str) -> int:
        """A device left (by ip or mac): its host rows go and its sessions end; how many."""
        mac = _mac(who) if _MAC.fullmatch(who.strip()) else None
        gone = [host for host in self.tables[_HOST]
                if host.get("address") == who.strip() or (mac and host.get("mac-address") == mac)]
        for host in gone:
            self.before_remove(_HOST, host)
            if host in self.tables[_HOST]:
                self.tables[_HOST].remove(host)
        self.dirty = True
        return len(gone)

    def _add_session_queue(self, session: dict, rate_limit: str) -> None:
        """The session's dynamic simple queue: the rate is fixed here, at login, so a user
        moved to another profile keeps the old rate until it logs in again."""
        if not rate_limit.strip():
            return
        first = rate_limit.split()[0]
        rx, _, tx = first.partition("/")
        base = f"<hotspot-{session['user']}"
        taken = {row.get("name") for row in self.tables[_QUEUE]}
        name, number = f"{base}>", 1
        while name in taken:
            name, number = f"{base}-{number}>", number + 1
        self.insert(_QUEUE, {"name": name, "target": f"{session['address']}/32",
                             "max-limit": f"{rx}/{tx or rx}", "dynamic": "true"})

    def session_queue(self, session: dict) -> dict | None:
        """The dynamic queue of a session (by its address), or None."""
        target = f"{session.get('address', '')}/32"
        return next((row for row in self.tables[_QUEUE]
                     if row.get("dynamic") == "true" and row.get("target") == target), None)

    def session_user(self, session: dict) -> dict | None:
        """The user row a session belongs to."""
        return self._login_user(session.get("user", ""), session.get("server", ""))

    def end_session(self, session: dict) -> None:
        """Log a session out: add its uptime and traffic to the user's counters."""
        if session not in self.tables[_ACTIVE]:
            return
        self.tables[_ACTIVE].remove(session)
        queue = self.session_queue(session)
        if queue is not None:
            self.tables[_QUEUE].remove(queue)
        user = self.session_user(session)
        if user is not None:
            user["uptime"] = str(int(user.get("uptime", "0")) + int(session.get("uptime", "0")))
            for name in _COUNTERS:
                user[name] = str(int(user.get(name, "0")) + int(session.get(name, "0")))
        self._authorize_host(session.get("server", ""), session.get("address", ""),
                             session.get("mac-address", ""), False)
        self.dirty = True

    def end_all_sessions(self) -> None:
        """Log every client out (reboot); dynamic hosts disappear."""
        for session in list(self.tables[_ACTIVE]):
            self.end_session(session)
        self.tables[_HOST].clear()

    # --- clock and traffic ---------------------------------------------------------------

    def _limits(self, session: dict) -> tuple[int | None, int | None]:
        """Seconds left under limit-uptime and under the profile's session-timeout."""
        user = self.session_user(session) or {}
        limit = _seconds(user.get("limit-uptime"))
        used = int(user.get("uptime", "0")) + int(session.get("uptime", "0"))
        by_limit = None if limit is None else limit - used
        profile = next(iter(self.find("/ip/hotspot/user/profile",
                                      name=user.get("profile", "default"))), {})
        timeout = _seconds(profile.get("session-timeout"))
        by_timeout = None if timeout is None else timeout - int(session.get("uptime", "0"))
        return by_limit, by_timeout

    def _update_time_left(self, session: dict) -> None:
        left = [x for x in self._limits(session) if x is not None]
        if left:
            session["session-time-left"] = str(max(0, min(left)))
        else:
            session.pop("session-time-left", None)

    def tick(self, seconds: int) -> None:
        """Advance the router clock: sessions age and end at their limits."""
        if seconds <= 0:
            return
        self.uptime += seconds
        self.elapsed += seconds
        for session in list(self.tables[_ACTIVE]):
            left = [x for x in self._limits(session) if x is not None]
            step = seconds if not left else max(0, min(seconds, min(left)))
            session["uptime"] = str(int(session["uptime"]) + step)
            if left and step >= min(left):
                self.end_session(session)
            else:
                self._update_time_left(session)
        for host in self.tables[_HOST]:
            host["uptime"] = str(int(host.get("uptime", "0")) + seconds)
        for cookie in list(self.tables["/ip/hotspot/cookie"]):
            remaining = int(cookie.get("expires-in", "0")) - seconds
            if remaining <= 0:
                self.tables["/ip/hotspot/cookie"].remove(cookie)
            else:
                cookie["expires-in"] = str(remaining)
        # an idle router is not worth rewriting the state file for every clock tick
        if any(self.tables[p] for p in (_ACTIVE, _HOST, "/ip/hotspot/cookie")):
            self.dirty = True

    def add_traffic(self, who: str, bytes_in: int, bytes_out: int) -> int:
        """Count traffic on the sessions of a user name or MAC; returns how many matched."""
        matched = [s for s in self.tables[_ACTIVE]
                   if s.get("user") == who or s.get("mac-address", "").upper() == who.upper()]
        for session in matched:
            for name, amount in (("bytes-in", bytes_in), ("bytes-out", bytes_out)):
                session[name] = str(int(session.get(name, "0")) + amount)
                packets = name.replace("bytes", "packets")
                session[packets] = str(int(session.get(packets, "0")) + -(-amount // 1500))
            self._end_if_over_bytes(session)
        self.dirty = True
        return len(matched)

    def _end_if_over_bytes(self, session: dict) -> None:
        used = {"limit-bytes-in": int(session["bytes-in"]),
                "limit-bytes-out": int(session["bytes-out"]),
                "limit-bytes-total": int(session["bytes-in"]) + int(session["bytes-out"])}
        user = self.session_user(session) or {}
        before = {"limit-bytes-in": int(user.get("bytes-in", "0")),
                  "limit-bytes-out": int(user.get("bytes-out", "0")),
                  "limit-bytes-total": int(user.get("bytes-in", "0")) + int(user.get("bytes-out", "0"))}
        for name, amount in used.items():
            limit = int(session.get(name) or 0)  # 0: no limit
            if limit and amount + before[name] >= limit:
                self.end_session(session)
                return

    # --- /tool/fetch -----------------------------------------------------------------------

    def fetch(self, attrs: dict, body: bytes | None = None) -> list[tuple[str, dict]]:
        """Store what ``/tool/fetch`` downloaded (``body``, fetched by the session) as a file."""
        if not attrs.get("url") and not attrs.get("address"):
            raise SimTrap("missing value(s) of argument(s) url", 1)
        self.fetched.append(dict(attrs))
        body = body or b""
        output = attrs.get("output", "file")
        if output == "file" and attrs.get("upload", "no") not in ("yes", "true"):
            name = attrs.get("dst-path") or posixpath.basename(attrs.get("url", "").split("?")[0]) \
                or "index.html"
            folder = posixpath.dirname(name)
            if folder and not self.find("/file", name=folder):
                self.insert("/file", {"name": folder, "type": "directory", "size": "0",
                                      "creation-time": self.now_text()})
            for old in self.find("/file", name=name):
                self.tables["/file"].remove(old)
            try:
                contents = body.decode("utf-8")
            except UnicodeDecodeError:
                contents = ""  # the router keeps any bytes; the emulator keeps text only
            self.insert("/file", {"name": name, "type": _file_type(name), "size": str(len(body)),
                                  "contents": contents, "creation-time": self.now_text()})
        self.dirty = True
        size = str(len(body))
        return [("!re", {"status": "finished", "downloaded": str(len(body) // 1024),
                         "total": size, "duration": "1s"}), ("!done", {})]


def _file_type(name: str) -> str:
    """How ``/file print`` describes a file by its extension."""
    extension = posixpath.splitext(name)[1].lower()
    return {".html": "html file", ".txt": "text file", ".js": "js file",
            ".rsc": "script", ".css": "css file"}.get(extension, "file")
