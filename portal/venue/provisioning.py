"""Bringing a router up for Kibanda: the site's script, the plan, applying it, the verdicts.

``kibanda provision`` (``portal/cli/provision.py``) calls these in order:
``read_facts`` (version, board, architecture, memory, interfaces) → ``refusals`` (too
old, interface missing, too little memory) → ``site_script`` (the rendered
``provisioning/hotspot.rsc``, the same text ``--export`` writes) → ``plan`` (each line
compared with what the router has: add, set, sign, or nothing) → ``apply`` → the
package profiles → ``fetch_hotspot_files`` (the router downloads the pages the portal
renders; sizes compared). A second run plans nothing and says so. No Flask, no click.
"""
from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from ..errors import RouterError, ValidationError
from ..routeros.script import ScriptCommand, parse, quote, render
from ..timeutil import parse_duration
from .hotspot_files import HOTSPOT_FILES

#: The oldest RouterOS the scripts are written for (6.43 changed the API login).
OLDEST = (6, 49)
#: A hotspot with a few hundred sessions wants this much free memory on the router.
MIN_FREE_MEMORY = 24 * 1024 * 1024
#: Free memory the container needs on the router (portal, agent and their Python).
CONTAINER_MEMORY = 200 * 1024 * 1024
CONTAINER_ARCHITECTURES = {"arm64", "arm", "x86_64", "x86"}
#: EN7562CT boards take arm32v5 images only: no Python image for them.
ARM32V5_BOARDS = ("hEX refresh", "hAP ax S", "E50UG")
HTML_DIRECTORY = "kibanda"
API_GROUP = "kibanda-api"
DARAJA_HOSTS = {"sandbox": "sandbox.safaricom.co.ke", "production": "api.safaricom.co.ke"}
_PORT_NAME = r"[A-Za-z0-9][A-Za-z0-9._\-]{0,30}"
_TRUE, _FALSE = {"yes", "true"}, {"no", "false"}


@dataclass
class SiteSpec:
    """What the technician asked for, checked: the values every template line needs."""

    site_name: str
    hotspot_ports: list[str]
    portal_url: str
    appliance: str
    api_user: str = "kibanda"
    api_password: str = ""
    wan: str = "ether1"
    network: str = "10.5.50.0/24"
    dns_name: str = "wifi.kibanda.lan"
    hotspot_server: str = "hotspot1"
    mpesa_base_url: str = ""
    ssid: str = ""

    def __post_init__(self) -> None:
        import re

        if not self.site_name.strip() or len(self.site_name) > 60 \
                or any(ord(ch) < 32 or ord(ch) == 127 for ch in self.site_name):
            raise ValidationError("--site-name: 1 to 60 characters, no control characters")
        ports = [p.strip() for p in self.hotspot_ports if p.strip()]
        if not ports or any(not re.fullmatch(_PORT_NAME, p) for p in ports + [self.wan]):
            raise ValidationError("--hotspot-ports: interface names like ether2,ether3")
        if self.wan in ports:
            raise ValidationError(f"--hotspot-ports: {self.wan} is the internet port")
        self.hotspot_ports = ports
        try:
            net = ipaddress.IPv4Network(self.network, strict=True)
        except ValueError:
            raise ValidationError(f"--network: not an IPv4 network like 10.5.50.0/24: "
                                  f"{self.network!r}") from None
        if not 16 <= net.prefixlen <= 28:
            raise ValidationError("--network: a /16 to /28 network")
        self.network = str(net)
        try:
            ipaddress.IPv4Address(self.appliance)
        except ValueError:
            raise ValidationError(f"--appliance-address: not an IPv4 address: "
                                  f"{self.appliance!r}") from None
        parts = urlsplit(self.portal_url or "")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValidationError(f"--portal-url: like http://10.5.50.2:8080, not "
                                  f"{self.portal_url!r}")
        self.portal_url = self.portal_url.rstrip("/")
        if not re.fullmatch(r"[A-Za-z0-9.\-]{1,63}", self.dns_name or ""):
            raise ValidationError(f"--dns-name: a host name, not {self.dns_name!r}")
        if not re.fullmatch(_PORT_NAME, self.api_user or "") \
                or not re.fullmatch(_PORT_NAME, self.hotspot_server or ""):
            raise ValidationError("API user and hotspot server: letters, digits, . _ -")
        self.ssid = (self.ssid or self.site_name).strip()[:32]

    @property
    def hotspot_address(self) -> str:
        """The router's address on the hotspot network (the first host)."""
        return str(next(ipaddress.IPv4Network(self.network).hosts()))

    @property
    def captive_url(self) -> str:
        """The RFC 8908 API, handed out in DHCP option 114."""
        return f"{self.portal_url}/api/captive"

    def values(self) -> dict[str, str]:
        """The template's values, each made safe to stand in a script line."""
        net = ipaddress.IPv4Network(self.network)
        hosts = list(net.hosts())
        # The first tenth of the network stays for fixed addresses (the appliance, printers).
        first = hosts[max(1, len(hosts) // 10)]
        daraja = urlsplit(self.mpesa_base_url or "").hostname or DARAJA_HOSTS["production"]
        bridge = "br-kibanda"
        port_lines = "\n".join(f"/interface bridge port add bridge={bridge} interface={quote(p)}"
                               for p in self.hotspot_ports)
        fetch_lines = "\n".join(
            f"/tool fetch url={quote(self.portal_url + '/hotspot-html/' + name)} "
            f"dst-path={HTML_DIRECTORY}/{name}" for name in HOTSPOT_FILES)
        return {
            "SITE_NAME": self.site_name.replace("\n", " "), "BRIDGE": bridge,
            "PORT_LINES": port_lines, "HOTSPOT_PORTS": ",".join(self.hotspot_ports),
            "WAN": self.wan, "NETWORK": self.network, "PREFIX": str(net.prefixlen),
            "HOTSPOT_ADDRESS": self.hotspot_address, "POOL": f"{first}-{hosts[-1]}",
            "APPLIANCE": self.appliance, "CAPTIVE_URL": self.captive_url,
            "DNS_NAME": self.dns_name, "HOTSPOT_SERVER": self.hotspot_server,
            "DARAJA_HOST": daraja, "API_USER": self.api_user,
            "API_PASSWORD": quote(self.api_password), "FETCH_LINES": fetch_lines,
            "SITE_NAME_VALUE": quote(self.site_name),
            "PORTAL_URL": self.portal_url,
        }


@dataclass
class RouterFacts:
    """What the router says about itself."""

    version: str
    major: int
    minor: int
    board: str
    architecture: str
    free_memory: int
    total_memory: int
    interfaces: list[str] = field(default_factory=list)

    @property
    def v7(self) -> bool:
        """RouterOS 7 or newer."""
        return self.major >= 7


def read_facts(gateway) -> RouterFacts:
    """Version, board, architecture, memory and interface names, read over the API."""
    health = gateway.health()
    major, minor = gateway.version_tuple()
    names = [row.get("name", "") for row in gateway.menu_rows("/interface")]
    return RouterFacts(version=health["version"], major=major, minor=minor,
                       board=health["board"], architecture=health["architecture"],
                       free_memory=health["free_memory"], total_memory=health["total_memory"],
                       interfaces=names)


def refusals(facts: RouterFacts, spec: SiteSpec) -> list[str]:
    """Why this router cannot be provisioned as asked, each with what to do (empty: fine)."""
    problems = []
    if (facts.major, facts.minor) < OLDEST:
        problems.append(f"RouterOS {facts.version} is too old: Kibanda needs 6.49 or newer. "
                        f"Upgrade it (System > Packages > Check For Updates), then run this again.")
    missing = [name for name in [*spec.hotspot_ports, spec.wan] if name not in facts.interfaces]
    if missing:
        problems.append(f"interface {', '.join(missing)} does not exist on this router "
                        f"(it has {', '.join(facts.interfaces) or 'none'}): check "
                        f"--hotspot-ports and --wan.")
    if facts.free_memory < MIN_FREE_MEMORY:
        problems.append(f"not enough free memory: the router has {facts.free_memory // 2**20} MB "
                        f"free, a hotspot needs at least {MIN_FREE_MEMORY // 2**20} MB. Reboot "
                        f"it, remove packages it does not use, or use a bigger router.")
    return problems


def container_verdict(facts: RouterFacts) -> tuple[bool, str]:
    """Whether Kibanda can run inside this router, and what to do instead."""
    arch = (facts.architecture or "").lower()
    instead = "run Kibanda on a Raspberry Pi (or any small Linux box) on the router's LAN"
    if arch.startswith("mips") or arch in ("tile", "ppc", "smips"):
        return False, f"no: {facts.board} has a {arch} CPU (containers need ARM, ARM64 or x86); {instead}"
    if arch not in CONTAINER_ARCHITECTURES:
        return False, f"no: unknown CPU architecture {arch!r}; {instead}"
    if any(board.lower() in (facts.board or "").lower() for board in ARM32V5_BOARDS):
        return False, f"no: {facts.board} only runs arm32v5 images; {instead}"
    if not facts.v7:
        return False, f"not yet: containers need RouterOS 7 (this router has {facts.version}); " \
                      f"upgrade it, or {instead}"
    if facts.free_memory < CONTAINER_MEMORY:
        return False, (f"no: only {facts.free_memory // 2**20} MB free memory, the container "
                       f"needs {CONTAINER_MEMORY // 2**20} MB; {instead}")
    return True, (f"yes: {facts.board} ({arch}, {facts.free_memory // 2**20} MB free) can run "
                  f"the Kibanda container from a USB disk (--container-script FILE writes its script)")


def site_script(spec: SiteSpec, facts: RouterFacts) -> str:
    """The site's hotspot script for this router's RouterOS version."""
    return render("hotspot.rsc", {**spec.values(), "VERSION": facts.version},
                  {"v7" if facts.v7 else "v6"})


def container_script(spec: SiteSpec, facts: RouterFacts, disk: str = "usb1") -> str:
    """The router-resident (container) script; the env-list syntax of this version."""
    syntax = "envlists" if (facts.major, facts.minor) >= (7, 21) else "envs"
    return render("container.rsc", {**spec.values(), "BOARD": facts.board or "unknown",
                                    "ARCH": facts.architecture or "unknown", "DISK": disk},
                  {syntax})


# --- the plan --------------------------------------------------------------------------

@dataclass
class Change:
    """One thing the router lacks: ``add``, ``set`` (with the differing values), ``sign``."""

    action: str
    command: ScriptCommand
    values: dict
    target: str = ""  # the .id a set applies to

    def describe(self) -> str:
        """One line of the plan, secrets hidden."""
        shown = {k: ("********" if k == "password" else v) for k, v in self.values.items()}
        words = " ".join(f"{k}={quote(v)}" for k, v in shown.items())
        path = self.command.menu.replace("/", " ").strip()
        item = f" {self.command.item}" if self.command.item else ""
        return f"{self.action:4} /{path}{item} {words}".rstrip()


def same(current: str | None, wanted: str) -> bool:
    """Compare a printed value with a script value as the router means them."""
    current = "" if current is None else str(current)
    if current == wanted:
        return True
    if wanted.lower() in _TRUE | _FALSE:
        return (current.lower() in _TRUE) == (wanted.lower() in _TRUE) and current != ""
    try:
        return parse_duration(current) == parse_duration(wanted)
    except ValueError:
        return False


def _match_key(command: ScriptCommand) -> dict:
    """How an existing row is recognised as this ``add``: name, interface, address or comment."""
    attrs = command.attrs
    if command.menu == "/interface/bridge/port":
        return {"interface": attrs["interface"]}
    if command.menu == "/ip/dhcp-client":
        return {"interface": attrs["interface"]}
    if "name" in attrs:
        return {"name": attrs["name"]}
    if command.menu in ("/ip/address", "/ip/dhcp-server/network"):
        return {"address": attrs["address"]}
    return {"comment": attrs["comment"]}


def _differences(row: dict, attrs: dict, secret_ok: bool) -> dict:
    return {name: value for name, value in attrs.items()
            if not (name == "password" and secret_ok) and not same(row.get(name), value)}


def plan(gateway, script: str, *, password_known: bool) -> list[Change]:
    """What ``apply`` would change to make the router say what ``script`` says.

    ``password_known``: the API user's password stored here still logs in, so an
    existing user's password (never printed by the router) is left alone.
    """
    changes: list[Change] = []
    cache: dict[str, list[dict]] = {}

    def rows(menu: str) -> list[dict]:
        if menu not in cache:
            cache[menu] = gateway.menu_rows(menu)
        return cache[menu]

    for command in parse(script):
        if command.verb == "fetch":
            continue  # the hotspot files: compared by size in fetch_hotspot_files
        if command.verb == "add":
            key = _match_key(command)
            found = [r for r in rows(command.menu)
                     if all(same(r.get(k), v) for k, v in key.items())]
            if not found:
                changes.append(Change("add", command, dict(command.attrs)))
                continue
            diff = _differences(found[0], command.attrs, password_known)
            if diff:
                changes.append(Change("set", command, diff, found[0].get(".id", "")))
        elif command.verb == "set":
            menu_rows = rows(command.menu)
            found = ([r for r in menu_rows if r.get("name") == command.item]
                     if command.item else menu_rows[:1])
            if not found:
                raise RouterError(f"{gateway.label}: {command.menu}: no {command.item!r} to set")
            diff = _differences(found[0], command.attrs, password_known)
            if diff:
                changes.append(Change("set", command, diff, found[0].get(".id", "")))
        elif command.verb == "sign":
            found = [r for r in rows(command.menu) if r.get("name") == command.item]
            if not found or not same(found[0].get("private-key"), "yes"):
                changes.append(Change("sign", command, {}))
        else:
            raise ValueError(f"line {command.line}: {command.verb} is not planned by provision")
    return changes


def apply(gateway, changes: list[Change]) -> None:
    """Send each change to the router, in the script's order."""
    for change in changes:
        command = change.command
        if change.action == "add":
            gateway.command(f"{command.menu}/add", change.values)
        elif change.action == "set":
            target = {".id": change.target} if change.target else {}
            gateway.command(f"{command.menu}/set", {**target, **change.values})
        elif change.action == "sign":
            gateway.command(f"{command.menu}/sign", {".id": command.item})


# --- the hotspot pages ----------------------------------------------------------------------

@dataclass
class FileCheck:
    """One hotspot file: what the portal serves and what the router holds."""

    name: str
    served: int
    on_router: int | None

    @property
    def current(self) -> bool:
        """The router has the file, with the portal's size."""
        return self.on_router == self.served


def compare_hotspot_files(gateway, served_sizes: dict[str, int]) -> list[FileCheck]:
    """Each file's size on the router against the size the portal serves."""
    on_router = {row.get("name", ""): row for row in gateway.menu_rows("/file")}
    checks = []
    for name in HOTSPOT_FILES:
        row = on_router.get(f"{HTML_DIRECTORY}/{name}")
        size = int(row["size"]) if row and str(row.get("size", "")).isdigit() else None
        checks.append(FileCheck(name, served_sizes[name], size))
    return checks


def fetch_hotspot_files(gateway, portal_url: str, served_sizes: dict[str, int]) -> list[FileCheck]:
    """Make the router download every file that is missing or differs; the sizes after."""
    before = compare_hotspot_files(gateway, served_sizes)
    for check in before:
        if not check.current:
            gateway.command("/tool/fetch", {
                "url": f"{portal_url.rstrip('/')}/hotspot-html/{check.name}", "mode": "http",
                "dst-path": f"{HTML_DIRECTORY}/{check.name}"})
    return compare_hotspot_files(gateway, served_sizes)


def appliance_address(router_host: str, router_port: int) -> str:
    """This machine's address on the way to the router (what the router sees us as)."""
    family = socket.AF_INET6 if ":" in router_host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        probe.connect((router_host, router_port))  # UDP: no packet leaves, only a route
        return probe.getsockname()[0]
