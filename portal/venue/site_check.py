"""The technician's doctor (``kibanda check``): is this site able to sell right now?

Each check returns a ``CheckLine``: OK with what it saw, or what is wrong and how to fix
it. The router is asked as the appliance asks it (the site's own API user), M-Pesa with
the site's own credentials. The checks only read; nothing is changed anywhere.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import requests

from ..errors import KibandaError, RouterError, RouterLoginRefused, RouterUnreachable
from .hotspot_files import HOTSPOT_FILES, render_file
from .provisioning import HTML_DIRECTORY, OLDEST, compare_hotspot_files

#: What the hotspot profile's login-by must hold (codes without JavaScript; returning phones).
LOGIN_BY_NEEDED = ("http-pap", "mac-cookie")


@dataclass
class CheckLine:
    """One line of the report."""

    name: str
    ok: bool
    detail: str
    fix: str = ""

    def text(self) -> str:
        """``OK   name: detail`` or ``FAIL name: detail; fix: ...``."""
        if self.ok:
            return f"OK   {self.name}: {self.detail}"
        return f"FAIL {self.name}: {self.detail}" + (f"\n     fix: {self.fix}" if self.fix else "")


class _Failed(Exception):
    def __init__(self, detail: str, fix: str = ""):
        super().__init__(detail)
        self.detail, self.fix = detail, fix


def _hotspot(gateway, config) -> tuple[dict, dict]:
    name = str(config.get("HOTSPOT_SERVER") or "hotspot1")
    servers = gateway.menu_rows("/ip/hotspot", {"name": name})
    if not servers:
        raise _Failed(f"no hotspot server {name!r} on the router",
                      "run `kibanda provision` (or set KIBANDA_HOTSPOT_SERVER to the router's)")
    server = servers[0]
    if server.get("disabled") in ("true", "yes"):
        raise _Failed(f"hotspot server {name!r} is disabled", f"/ip hotspot enable {name}")
    profiles = gateway.menu_rows("/ip/hotspot/profile", {"name": server.get("profile", "")})
    return server, (profiles[0] if profiles else {})


class SiteChecks:
    """Every check of one site; ``run()`` gives the lines in order."""

    def __init__(self, config, gateway, mpesa, render_files=render_file,
                 http=requests):
        self.config, self.gateway, self.mpesa = config, gateway, mpesa
        self.render_files = render_files
        self.http = http
        self.router_ok = False

    def run(self, branding: dict) -> list[CheckLine]:
        """All the lines; router checks after the first are skipped when it is unreachable."""
        self.branding = branding
        checks: list[tuple[str, Callable[[], str]]] = [
            ("router reachable, login allowed", self.router_login),
            ("RouterOS version", self.router_version),
            ("hotspot server and profile", self.hotspot_profile),
            ("hotspot files present and current", self.hotspot_files),
            ("walled garden lets phones reach the portal", self.walled_garden),
            ("router clock in sync", self.clock),
            ("M-Pesa credentials accepted", self.mpesa_credentials),
            ("payment confirmation path", self.confirmation_path),
            ("upstream reachable", self.upstream),
        ]
        lines = []
        for name, check in checks:
            if not self.router_ok and check.__name__ in _ROUTER_CHECKS:
                lines.append(CheckLine(name, False, "not checked: the router cannot be asked",
                                       "fix the line above first"))
                continue
            try:
                lines.append(CheckLine(name, True, check()))
            except _Failed as exc:
                lines.append(CheckLine(name, False, exc.detail, exc.fix))
            except RouterError as exc:
                lines.append(CheckLine(name, False, exc.operator_message,
                                       "check the router link (first line)"))
        return lines

    # --- the router ---------------------------------------------------------------------

    def router_login(self) -> str:
        gateway = self.gateway
        try:
            health = gateway.health()
        except RouterLoginRefused:
            raise _Failed(f"the router refused user {self.config.get('ROUTER_USER')!r}: wrong "
                          f"password, or the user lacks the api policy or is not allowed from "
                          f"this appliance's address",
                          "set KIBANDA_ROUTER_USER/KIBANDA_ROUTER_PASSWORD, or run "
                          "`kibanda provision` again") from None
        except RouterUnreachable as exc:
            raise _Failed(f"API service disabled or port closed: {exc.operator_message}",
                          "on the router: /ip service enable api; check the cable, "
                          "KIBANDA_ROUTER_HOST and KIBANDA_ROUTER_PORT") from None
        self.router_ok = True
        return f"{health['identity']} at {health['host']}:{health['port']}, {health['board']}"

    def router_version(self) -> str:
        major, minor = self.gateway.version_tuple()
        version = self.gateway.version()
        if (major, minor) < OLDEST:
            raise _Failed(f"RouterOS {version} is too old (6.49 or newer needed)",
                          "upgrade RouterOS: System > Packages > Check For Updates")
        return version

    def hotspot_profile(self) -> str:
        server, profile = _hotspot(self.gateway, self.config)
        login_by = profile.get("login-by", "").split(",")
        lacking = [m for m in LOGIN_BY_NEEDED if m not in login_by]
        if lacking:
            raise _Failed(f"profile {profile.get('name')!r} login-by lacks {', '.join(lacking)}",
                          f"/ip hotspot profile set {profile.get('name')} "
                          f"login-by=http-chap,http-pap,cookie,mac-cookie")
        if profile.get("html-directory") != HTML_DIRECTORY:
            raise _Failed(f"profile {profile.get('name')!r} uses html-directory "
                          f"{profile.get('html-directory')!r}, not Kibanda's pages",
                          f"/ip hotspot profile set {profile.get('name')} "
                          f"html-directory={HTML_DIRECTORY}")
        return f"{server['name']} on {server.get('interface')}, profile {profile.get('name')}"

    def hotspot_files(self) -> str:
        sizes = {name: len(self.render_files(
            name, portal_url=str(self.config.get("PORTAL_URL") or ""),
            site_name=self.branding["name"], primary_color=self.branding["color"]))
            for name in HOTSPOT_FILES}
        checks = compare_hotspot_files(self.gateway, sizes)
        wrong = [c for c in checks if not c.current]
        if wrong:
            names = ", ".join(f"{c.name} ({'missing' if c.on_router is None else 'old'})"
                              for c in wrong)
            raise _Failed(f"{len(wrong)} of {len(checks)} files differ from this site's: {names}",
                          "run `kibanda provision` again (the router fetches them)")
        return f"{len(checks)} files in {HTML_DIRECTORY}/, sizes match"

    def walled_garden(self) -> str:
        from urllib.parse import urlsplit

        host = urlsplit(str(self.config.get("PORTAL_URL") or "")).hostname or ""
        rows = self.gateway.menu_rows("/ip/hotspot/walled-garden/ip")
        allowed = [r for r in rows if host and host in (r.get("dst-address"), r.get("dst-host"))
                   and r.get("action", "accept") == "accept" and r.get("disabled") not in ("true", "yes")]
        if not allowed:
            raise _Failed(f"phones on the hotspot cannot reach the portal at {host!r} before "
                          f"paying", f"/ip hotspot walled-garden ip add dst-address={host} "
                          f"action=accept comment=kibanda")
        return f"{host} allowed"

    def clock(self) -> str:
        ntp = self.gateway.menu_rows("/system/ntp/client")
        clock = self.gateway.menu_rows("/system/clock")
        enabled = bool(ntp) and ntp[0].get("enabled") in ("true", "yes")
        zone = clock[0].get("time-zone-name", "") if clock else ""
        if not enabled:
            raise _Failed("the router's NTP client is off: its clock drifts",
                          "/system ntp client set enabled=yes servers=pool.ntp.org")
        status = ntp[0].get("status", "")
        if status and status not in ("synchronized", "reached", "started"):
            raise _Failed(f"NTP is on but not synchronized ({status})",
                          "check the router's internet link and DNS")
        return f"NTP {status or 'on'}, time zone {zone or '?'}"

    # --- M-Pesa and the internet -------------------------------------------------------------

    def mpesa_credentials(self) -> str:
        try:
            self.mpesa.check_credentials()
        except KibandaError as exc:
            raise _Failed(exc.operator_message,
                          "check KIBANDA_MPESA_CONSUMER_KEY/SECRET and KIBANDA_MPESA_BASE_URL "
                          "(sandbox or production), and the internet link") from None
        return f"OAuth token from {self.config.get('MPESA_BASE_URL')}"

    def confirmation_path(self) -> str:
        base = str(self.config.get("CALLBACK_BASE_URL") or "")
        if not base:
            return ("no public callback address: payments are confirmed by asking M-Pesa "
                    "(STK query, then Pull Transactions)")
        try:
            self.http.get(base, timeout=5)
        except requests.RequestException as exc:
            raise _Failed(f"KIBANDA_CALLBACK_BASE_URL {base} does not answer: {type(exc).__name__}",
                          "fix the public address (port forward, tunnel), or unset it to rely "
                          "on STK query and Pull Transactions") from None
        return f"callbacks reach {base}"

    def upstream(self) -> str:
        base = str(self.config.get("UPSTREAM_URL") or "").rstrip("/")
        if not base:
            return "no upstream set: sales stay on this appliance"
        try:
            response = self.http.get(f"{base}/healthz", timeout=5)
        except requests.RequestException as exc:
            raise _Failed(f"{base} does not answer: {type(exc).__name__}",
                          "check the internet link and KIBANDA_UPSTREAM_URL; sales wait in "
                          "the outbox meanwhile") from None
        return f"{base} answers (HTTP {response.status_code})"


_ROUTER_CHECKS = {"router_version", "hotspot_profile", "hotspot_files", "walled_garden", "clock"}
