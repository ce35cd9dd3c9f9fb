"""The RouterOS emulator's menu table: fields, defaults, keys and the factory state.

Each menu is data (a ``Menu``): adding a menu is one entry in ``MENUS``. Values are
kept as canonical strings (booleans "true"/"false", durations in whole seconds) and
rendered for the wire by ``render_value`` according to the emulated version.
See the RouterOS reference sheet (hotspot menus) for the property names.
"""
from __future__ import annotations

import re
from dataclasses import dataclass


class SimTrap(Exception):
    """A command failure answered with ``!trap`` (then ``!done``)."""

    def __init__(self, message: str, category: int | None = None):
        super().__init__(message)
        self.message = message
        self.category = category


# --- value kinds -------------------------------------------------------------------

_DURATION_PART = re.compile(r"(\d+)(w|d|h|ms|m|s)")
_UNITS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_duration(text: str) -> int:
    """Seconds in a RouterOS duration: ``1h``, ``1d2h``, ``3600``, ``00:30:00``, ``1w4d1h16m55s``."""
    text = text.strip()
    if text.isdigit():
        return int(text)
    clock = re.fullmatch(r"(?:(\d+)d\s*)?(\d+):(\d{1,2}):(\d{1,2})", text)
    if clock:
        days, hours, minutes, seconds = (int(g or 0) for g in clock.groups())
        return days * 86400 + hours * 3600 + minutes * 60 + seconds
    if text and _DURATION_PART.sub("", text) == "":
        total = 0
        for amount, unit in _DURATION_PART.findall(text):
            # milliseconds are accepted but the emulator keeps whole seconds
            total += 0 if unit == "ms" else int(amount) * _UNITS[unit]
        return total
    raise ValueError(f"invalid duration {text!r}")


def format_duration(seconds: int) -> str:
    """RouterOS duration text, weeks first: 694615 -> ``1w1d1h16m55s``; 0 -> ``0s``."""
    seconds = int(seconds)
    if seconds <= 0:
        return "0s"
    parts = []
    for unit, size in _UNITS.items():
        amount, seconds = divmod(seconds, size)
        if amount:
            parts.append(f"{amount}{unit}")
    return "".join(parts)


_TRUE = {"yes", "true"}
_FALSE = {"no", "false"}


@dataclass(frozen=True)
class Field:
    """One property of a menu row."""

    kind: str = "str"  # str, bool, duration, int
    default: str | None = None  # None: absent (not printed) until set
    required: bool = False
    readonly: bool = False
    secret: bool = False  # write-only, never printed (like /user password)
    ref: tuple[str, str, frozenset] | None = None  # (menu, key field, extra allowed values)
    none_ok: bool = True  # durations: "none" is a value


def s(default=None, **kw) -> Field:
    """A text field."""
    return Field("str", default, **kw)


def b(default="false", **kw) -> Field:
    """A boolean field."""
    return Field("bool", default, **kw)


def d(default=None, **kw) -> Field:
    """A duration field (stored as seconds or "none")."""
    return Field("duration", default, **kw)


def n(default=None, **kw) -> Field:
    """An integer field."""
    return Field("int", default, **kw)


def ro(kind="str", default=None) -> Field:
    """A read-only field the router maintains."""
    return Field(kind, default, readonly=True)


def ref(menu: str, key: str = "name", extra=(), default=None, required=False) -> Field:
    """A field whose value must name a row of another menu."""
    return Field("str", default, required=required, ref=(menu, key, frozenset(extra)))


def normalize(spec: Field, name: str, value: str) -> str | None:
    """Canonical stored form of a wire value; None means "unset"; SimTrap if invalid."""
    if spec.kind == "bool":
        low = value.lower()
        if low in _TRUE:
            return "true"
        if low in _FALSE:
            return "false"
        # UNCONFIRMED: exact RouterOS text for a bad boolean
        raise SimTrap(f"value of {name} must be yes or no", 1)
    if spec.kind == "duration":
        if value in ("none", "") and spec.none_ok:
            return "none"
        try:
            seconds = parse_duration(value)
        except ValueError:
            # UNCONFIRMED: exact RouterOS text for a bad time value
            raise SimTrap(f"invalid time value for argument {name}", 1) from None
        return str(seconds)
    if spec.kind == "int":
        if not re.fullmatch(r"\d+", value.strip()):
            # UNCONFIRMED: exact RouterOS text for a bad number
            raise SimTrap(f"invalid value for argument {name}", 1)
        return str(int(value))
    return value


def render_value(spec: Field | None, stored: str, v7: bool) -> str:
    """Wire text of a stored value (booleans differ between v6 and v7)."""
    if spec is None:
        return stored
    if spec.kind == "bool":
        truth = stored == "true"
        if v7:
            return "true" if truth else "false"
        return "yes" if truth else "no"
    if spec.kind == "duration" and stored != "none":
        return format_duration(int(stored))
    return stored


# --- menus -------------------------------------------------------------------------


@dataclass
class Menu:
    """One RouterOS menu: a table of rows (or one singleton row) and its commands."""

    path: str
    fields: dict[str, Field]
    key: tuple[str, ...] = ()  # unique together; also what ".id" may name
    singleton: bool = False
    verbs: frozenset = frozenset({"print", "get", "getall", "add", "set", "remove", "enable", "disable"})
    duplicate_message: str = "failure: item with such name already exists"
    only_v6: frozenset = frozenset()
    only_v7: frozenset = frozenset()

    def field_names(self, v7: bool) -> list[str]:
        """Fields that exist on this version."""
        hidden = self.only_v6 if v7 else self.only_v7
        return [name for name in self.fields if name not in hidden]


TABLE = frozenset({"print", "get", "getall", "add", "set", "remove", "enable", "disable"})
SINGLE = frozenset({"print", "get", "getall", "set"})
DYNAMIC = frozenset({"print", "get", "getall", "remove"})

_DISABLED = {"disabled": b("false"), "comment": s()}

_RULE = {
    "chain": s(required=True), "action": s("accept"), "src-address": s(), "dst-address": s(),
    "protocol": s(), "src-port": s(), "dst-port": s(), "in-interface": s(), "out-interface": s(),
    "to-addresses": s(), "to-ports": s(), "connection-state": s(), "src-address-list": s(),
    "dst-address-list": s(), "bytes": ro("int", "0"), "packets": ro("int", "0"),
    "dynamic": ro("bool", "false"), "invalid": ro("bool", "false"), **_DISABLED,
}


def _menus() -> dict[str, Menu]:
    menus = [
        Menu("/system/resource", {
            "uptime": ro("duration", "0"), "version": ro(), "build-time": ro(),
            "factory-software": ro(), "free-memory": ro("int"), "total-memory": ro("int"),
            "cpu": ro(), "cpu-count": ro("int"), "cpu-frequency": ro("int"), "cpu-load": ro("int"),
            "free-hdd-space": ro("int"), "total-hdd-space": ro("int"),
            "architecture-name": ro(), "board-name": ro(), "platform": ro(),
        }, singleton=True, verbs=frozenset({"print", "get", "getall"})),
        Menu("/system/identity", {"name": s("MikroTik")}, singleton=True, verbs=SINGLE),
        Menu("/system/clock", {
            "time": s(), "date": s(), "time-zone-autodetect": b("true"),
            "time-zone-name": s("manual"), "gmt-offset": ro(default="+00:00"),
            "dst-active": ro("bool", "false"),
        }, singleton=True, verbs=SINGLE),
        Menu("/system/ntp/client", {
            "enabled": b("false"), "mode": s("unicast"), "servers": s(""),
            "primary-ntp": s("0.0.0.0"), "secondary-ntp": s("0.0.0.0"), "server-dns-names": s(""),
            "status": ro(default="stopped"),
        }, singleton=True, verbs=SINGLE,
            only_v6=frozenset({"primary-ntp", "secondary-ntp", "server-dns-names"}),
            only_v7=frozenset({"servers"})),
        Menu("/ip/dns", {
            "servers": s(""), "dynamic-servers": ro(default=""), "allow-remote-requests": b("false"),
            "cache-size": n("2048"), "cache-max-ttl": d("604800"), "cache-used": ro("int", "0"),
        }, singleton=True, verbs=SINGLE),
        Menu("/interface", {
            "name": s(required=True), "type": ro(default="ether"), "mtu": s("1500"),
            "actual-mtu": ro("int", "1500"), "mac-address": ro(default="00:00:00:00:00:00"),
            "running": ro("bool", "true"), **_DISABLED,
        }, key=("name",), verbs=frozenset({"print", "get", "getall", "set", "enable", "disable"})),
        Menu("/interface/bridge", {
            "name": s(required=True), "mtu": s("auto"), "arp": s("enabled"),
            "protocol-mode": s("rstp"), "vlan-filtering": b("false"), "auto-mac": b("true"),
            "mac-address": ro(default="00:00:00:00:00:00"), "running": ro("bool", "true"), **_DISABLED,
        }, key=("name",)),
        Menu("/interface/bridge/port", {
            "bridge": ref("/interface/bridge", required=True),
            "interface": ref("/interface", required=True), "pvid": n("1"),
            "hw": b("true"), "inactive": ro("bool", "false"), **_DISABLED,
        }, key=("interface",), duplicate_message="device already added as bridge port"),
        Menu("/ip/address", {
            "address": s(required=True), "network": s(), "interface": ref("/interface", required=True),
            "actual-interface": ro(), "invalid": ro("bool", "false"), "dynamic": ro("bool", "false"),
            **_DISABLED,
        }),
        Menu("/ip/pool", {"name": s(required=True), "ranges": s(required=True),
                          "next-pool": s("none"), "comment": s()}, key=("name",)),
        Menu("/ip/dhcp-server", {
            "name": s(required=True), "interface": ref("/interface", required=True),
            "address-pool": ref("/ip/pool", extra={"static-only"}, default="static-only"),
            "lease-time": d("1800"), "authoritative": s("yes"), "add-arp": b("false"),
            "invalid": ro("bool", "false"), "dynamic": ro("bool", "false"), **_DISABLED,
        }, key=("name",)),
        Menu("/ip/dhcp-client", {
            "interface": ref("/interface", required=True), "add-default-route": s("yes"),
            "use-peer-dns": b("true"), "use-peer-ntp": b("true"), "status": ro(default="bound"),
            "address": ro(), "gateway": ro(), **_DISABLED,
        }, key=("interface",), duplicate_message="failure: dhcp-client on that interface already exists"),
        Menu("/ip/dhcp-server/network", {
            "address": s(required=True), "gateway": s(), "dns-server": s(), "netmask": s(),
            "domain": s(), "dhcp-option": s(""), "comment": s(),
        }),
        Menu("/ip/dhcp-server/option", {
            "name": s(required=True), "code": n(required=True), "value": s(required=True),
            "raw-value": ro(), "comment": s(),
        }, key=("name",)),
        Menu("/ip/firewall/nat", dict(_RULE)),
        Menu("/ip/firewall/filter", dict(_RULE)),
        Menu("/ip/service", {
            "name": ro(), "port": n(), "address": s(""), "certificate": s(),
            "max-sessions": n("20"), "invalid": ro("bool", "false"), "disabled": b("false"),
        }, key=("name",), verbs=frozenset({"print", "get", "getall", "set", "enable", "disable"})),
        Menu("/user", {
            "name": s(required=True), "group": ref("/user/group", required=True),
            "address": s(""), "password": s("", secret=True), "last-logged-in": ro(),
            "expired": ro("bool", "false"), **_DISABLED,
        }, key=("name",), duplicate_message="failure: user with the same name already exists"),
        Menu("/certificate", {
            "name": s(required=True), "common-name": s(required=True), "days-valid": n("365"),
            "key-size": s("2048"), "key-usage": s(""), "subject-alt-name": s(""),
            "private-key": ro("bool", "false"), "trusted": ro("bool", "false"),
            "fingerprint": ro(), "invalid-after": ro(),
        }, key=("name",), verbs=TABLE | {"sign"}),
        Menu("/user/group", {"name": s(required=True), "policy": s(""), "skin": s("default"),
                             "comment": s()}, key=("name",)),
        Menu("/ip/hotspot", {
            "name": s(required=True), "interface": ref("/interface", required=True),
            "address-pool": ref("/ip/pool", extra={"none"}, default="none"),
            "profile": ref("/ip/hotspot/profile", default="default"),
            "idle-timeout": d("300"), "keepalive-timeout": d("none"), "login-timeout": d("none"),
            "addresses-per-mac": s("2"), "HTTPS": ro("bool", "false"), "invalid": ro("bool", "false"),
            # UNCONFIRMED: whether `/ip hotspot add` defaults to disabled=yes
            **_DISABLED,
        }, key=("name",)),
        Menu("/ip/hotspot/profile", {
            "name": s(required=True), "hotspot-address": s("0.0.0.0"), "dns-name": s(""),
            "html-directory": s("hotspot"), "html-directory-override": s(""),
            "rate-limit": s(""), "http-proxy": s("0.0.0.0:0"), "smtp-server": s("0.0.0.0"),
            "login-by": s("http-chap,cookie"), "http-cookie-lifetime": d("259200"),
            "split-user-domain": b("false"), "use-radius": b("false"), "ssl-certificate": s("none"),
            "trial-uptime-limit": d("1800"), "trial-uptime-reset": d("86400"),
            "trial-user-profile": s("default"), "default": ro("bool", "false"),
        }, key=("name",)),
        Menu("/ip/hotspot/user", {
            "server": ref("/ip/hotspot", extra={"all"}, default="all"), "name": s(required=True),
            "password": s(""), "address": s(), "mac-address": s(),
            "profile": ref("/ip/hotspot/user/profile", default="default"), "email": s(),
            "routes": s(), "limit-uptime": d(none_ok=False), "limit-bytes-in": n(),
            "limit-bytes-out": n(), "limit-bytes-total": n(),
            "uptime": ro("duration", "0"), "bytes-in": ro("int", "0"), "bytes-out": ro("int", "0"),
            "packets-in": ro("int", "0"), "packets-out": ro("int", "0"),
            "dynamic": ro("bool", "false"), **_DISABLED,
        }, key=("server", "name"),
            verbs=TABLE | {"reset-counters"},
            duplicate_message="failure: already have user with this name for this server"),
        Menu("/ip/hotspot/user/profile", {
            "name": s(required=True), "address-pool": s("none"), "session-timeout": d(),
            "idle-timeout": d("none"), "keepalive-timeout": d("120"), "status-autorefresh": d("60"),
            "shared-users": s("1"), "add-mac-cookie": b("true"), "mac-cookie-timeout": d("259200"),
            "rate-limit": s(), "address-list": s(""), "on-login": s(""), "on-logout": s(""),
            "parent-queue": s(), "queue-type": s(), "transparent-proxy": b("false"),
            "open-status-page": s("always"), "insert-queue-before": s(),
            "default": ro("bool", "false"),
        }, key=("name",)),
        Menu("/ip/hotspot/active", {
            "server": ro(), "user": ro(), "domain": ro(), "address": ro(), "mac-address": ro(),
            "login-by": ro(), "uptime": ro("duration", "0"), "session-time-left": ro("duration"),
            "idle-time": ro("duration", "0"), "idle-timeout": ro("duration"),
            "keepalive-timeout": ro("duration"), "bytes-in": ro("int", "0"),
            "bytes-out": ro("int", "0"), "packets-in": ro("int", "0"), "packets-out": ro("int", "0"),
            "limit-bytes-in": ro("int"), "limit-bytes-out": ro("int"), "limit-bytes-total": ro("int"),
            "radius": ro("bool", "false"), "blocked": ro("bool", "false"), "comment": s(),
        }, verbs=DYNAMIC | {"login"}),
        Menu("/ip/hotspot/host", {
            "mac-address": ro(), "address": ro(), "to-address": ro(), "server": ro(),
            "uptime": ro("duration", "0"), "idle-time": ro("duration", "0"), "found-by": ro(),
            "authorized": ro("bool", "false"), "bypassed": ro("bool", "false"),
            "bytes-in": ro("int", "0"), "bytes-out": ro("int", "0"), "comment": s(),
        }, verbs=DYNAMIC),
        Menu("/ip/hotspot/cookie", {
            "user": ro(), "domain": ro(), "mac-address": ro(), "expires-in": ro("duration"),
            "mac-cookie": ro("bool", "false"),
        }, verbs=DYNAMIC),
        Menu("/ip/hotspot/walled-garden", {
            "dst-host": s(), "path": s(), "method": s(), "dst-port": s(), "src-address": s(),
            "server": s(), "action": s("allow"), "hits": ro("int", "0"), "dynamic": ro("bool", "false"),
            **_DISABLED,
        }),
        Menu("/ip/hotspot/walled-garden/ip", {
            "dst-address": s(), "dst-host": s(), "protocol": s(), "dst-port": s(),
            "src-address": s(), "server": s(), "action": s("accept"),
            "dynamic": ro("bool", "false"), "invalid": ro("bool", "false"), **_DISABLED,
        }),
        Menu("/file", {
            "name": s(required=True), "type": s("file"), "size": ro("int", "0"),
            "creation-time": ro(), "contents": s(""),
        }, key=("name",), verbs=frozenset({"print", "get", "getall", "add", "set", "remove"})),
        Menu("/tool", {}, verbs=frozenset({"fetch"})),
        # UNCONFIRMED (not on the reference sheet): the hotspot adds one dynamic simple
        # queue per session, named "<hotspot-USER>", its max-limit the user profile's
        # rate-limit (rx/tx = the client's upload/download, as max-limit's target
        # upload/download), fixed at login and removed at logout.
        Menu("/queue/simple", {
            "name": s(required=True), "target": s(required=True), "max-limit": s("0/0"),
            "dynamic": ro("bool", "false"), **_DISABLED,
        }, key=("name",)),

    ]
    return {menu.path: menu for menu in menus}


MENUS: dict[str, Menu] = _menus()

ENUMS = {
    ("/ip/hotspot/walled-garden", "action"): {"allow", "deny"},
    ("/ip/hotspot/walled-garden/ip", "action"): {"accept", "drop", "reject"},
}

SERVICES = [("telnet", 23), ("ftp", 21), ("www", 80), ("ssh", 22), ("www-ssl", 443),
            ("api", 8728), ("winbox", 8291), ("api-ssl", 8729)]


def factory_rows(factory_defaults: bool, user: str, password: str) -> dict[str, list[dict]]:
    """The rows of a new router (without ``.id``), keyed by menu path."""
    rows: dict[str, list[dict]] = {path: [] for path in MENUS}
    rows["/interface"] = [
        {"name": f"ether{i}", "type": "ether", "mac-address": f"48:8F:5A:1C:00:0{i}"}
        for i in range(1, 6)
    ]
    rows["/system/identity"] = [{"name": "MikroTik"}]
    rows["/system/clock"] = [{}]
    rows["/system/ntp/client"] = [{}]
    rows["/ip/dns"] = [{}]
    rows["/system/resource"] = [{}]
    rows["/ip/service"] = [{"name": name, "port": str(port)} for name, port in SERVICES]
    rows["/user/group"] = [
        {"name": "read", "policy": "local,telnet,ssh,reboot,read,test,winbox,password,web,sniff,sensitive,api,romon,rest-api"},
        {"name": "write", "policy": "local,telnet,ssh,reboot,read,write,test,winbox,password,web,sniff,sensitive,api,romon,rest-api"},
        {"name": "full", "policy": "local,telnet,ssh,ftp,reboot,read,write,policy,test,winbox,password,web,sniff,sensitive,api,romon,rest-api"},
    ]
    rows["/user"] = [{"name": user, "group": "full", "password": password}]
    rows["/ip/hotspot/profile"] = [{"name": "default", "default": "true"}]
    rows["/ip/hotspot/user/profile"] = [{"name": "default", "default": "true"}]
    if factory_defaults:
        return rows
    rows["/interface/bridge"] = [{"name": "bridge-hotspot", "mac-address": "48:8F:5A:1C:00:02"}]
    rows["/interface"].append({"name": "bridge-hotspot", "type": "bridge",
                               "mac-address": "48:8F:5A:1C:00:02"})
    rows["/interface/bridge/port"] = [{"bridge": "bridge-hotspot", "interface": f"ether{i}"}
                                      for i in range(2, 6)]
    rows["/ip/address"] = [{"address": "10.5.50.1/24", "network": "10.5.50.0",
                            "interface": "bridge-hotspot", "actual-interface": "bridge-hotspot"}]
    rows["/ip/pool"] = [{"name": "hs-pool-1", "ranges": "10.5.50.2-10.5.50.254"}]
    rows["/ip/dhcp-server"] = [{"name": "dhcp1", "interface": "bridge-hotspot",
                                "address-pool": "hs-pool-1", "lease-time": "3600"}]
    rows["/ip/dhcp-server/network"] = [{"address": "10.5.50.0/24", "gateway": "10.5.50.1",
                                        "dns-server": "10.5.50.1"}]
    # A router Kibanda's scripts set up: the profile accepts mac cookies (returning phones).
    rows["/ip/hotspot/profile"].append({"name": "hsprof1", "hotspot-address": "10.5.50.1",
                                        "dns-name": "wifi.kibanda.lan", "html-directory": "hotspot",
                                        "login-by": "http-chap,http-pap,cookie,mac-cookie"})
    rows["/ip/hotspot"] = [{"name": "hotspot1", "interface": "bridge-hotspot",
                            "address-pool": "hs-pool-1", "profile": "hsprof1"}]
    rows["/ip/firewall/nat"] = [
        {"chain": "srcnat", "action": "masquerade", "out-interface": "ether1"},
    ]
    return rows
