"""The RouterOS emulator's state: tables of rows and the generic menu commands.

``RouterState.execute(command, attrs, queries)`` answers one API sentence with a list of
``(reply_word, attributes)`` pairs or raises ``SimTrap``. Print queries are evaluated by
``routeros_query``, hotspot commands by ``HotspotMixin``. It is not thread-safe: the
server holds one lock around every call.
"""
from __future__ import annotations

import copy
import datetime as dt
import ipaddress
import json
import os

from portal.sim.routeros_hotspot import HotspotMixin
from portal.sim.routeros_menus import (
    ENUMS,
    MENUS,
    Menu,
    SimTrap,
    factory_rows,
    normalize,
    render_value,
)
from portal.sim.routeros_query import row_matches

# Attributes every command tolerates without complaint (print modifiers, API attributes).
_PRINT_FLAGS = {"detail", "stats", "without-paging", "terse", "brief", "follow", "follow-only",
                "interval", "from", "where", "as-value", "count-only", ".proplist", "value-list"}

_RESOURCE = {
    "build-time": "2024-09-20 13:00:27", "factory-software": "7.3.1",
    "free-memory": "736477184", "total-memory": "1073741824", "cpu": "ARM64",
    "cpu-count": "4", "cpu-frequency": "1400", "cpu-load": "3",
    "free-hdd-space": "905601024", "total-hdd-space": "1073741824",
    "architecture-name": "arm64", "board-name": "RB5009UG+S+", "platform": "MikroTik",
}


def _version_tuple(version: str) -> tuple[int, int]:
    parts = (version.split(".") + ["0"])[:2]
    return int(parts[0]), int("".join(ch for ch in parts[1] if ch.isdigit()) or 0)


class RouterState(HotspotMixin):
    """Every menu's rows, the id counters, the boot clock and the fetch log."""

    def __init__(self, version: str = "7.16", user: str = "admin", password: str = "",
                 factory_defaults: bool = False):
        self.version = version
        self.v7 = _version_tuple(version)[0] >= 7
        self.empty_replies = _version_tuple(version) >= (7, 18)
        self.uptime = 0
        self.elapsed = 0  # seconds since the emulator started (the clock never resets)
        self.wall_start = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
        self.fetched: list[dict] = []
        #: /system/resource as this board reports it (tests change memory, architecture).
        self.resource = dict(_RESOURCE)
        self.tables: dict[str, list[dict]] = {}
        self.next_id: dict[str, int] = {}
        self.dirty = False
        # Unique keys per menu, kept only across consecutive adds (see check_unique).
        self._key_cache: dict[str, tuple[int, set]] = {}
        self.load_factory(factory_defaults, user, password)

    # --- rows and ids ----------------------------------------------------------------

    def load_factory(self, factory_defaults: bool, user: str, password: str) -> None:
        """Replace every table with a new router's rows."""
        self._key_cache.clear()
        self.tables = {path: [] for path in MENUS}
        self.next_id = {path: 1 for path in MENUS}
        for path, rows in factory_rows(factory_defaults, user, password).items():
            for row in rows:
                self.insert(path, row)
        self.uptime = 0
        self.dirty = True

    def insert(self, path: str, values: dict) -> dict:
        """Add a row with defaults and a new ``.id``; no validation."""
        menu = MENUS[path]
        row = {}
        if not menu.singleton:
            row[".id"] = self.new_id(path)
        for name, spec in menu.fields.items():
            if spec.default is not None:
                row[name] = spec.default
        row.update(values)
        self.tables[path].append(row)
        self.dirty = True
        return row

    def new_id(self, path: str) -> str:
        """The next ``*HEX`` id of a menu."""
        number = self.next_id[path]
        self.next_id[path] = number + 1
        return f"*{number:X}"

    def renumber(self) -> None:
        """Give every row a fresh id, as a reboot does (old ids stop working)."""
        for path, rows in self.tables.items():
            for row in rows:
                if ".id" in row:
                    row[".id"] = self.new_id(path)
        self.dirty = True

    def rows(self, path: str) -> list[dict]:
        """Rendered rows of a menu (the wire view: every value a string)."""
        return [self.render(path, row) for row in self.tables[self._menu(path).path]]

    def find(self, path: str, **match) -> list[dict]:
        """Stored rows whose fields equal ``match``."""
        return [row for row in self.tables[path]
                if all(row.get(k) == v for k, v in match.items())]

    def now_text(self) -> str:
        """The router's date and time text (the format changed in 7.10)."""
        now = self.wall_start + dt.timedelta(seconds=self.elapsed)
        if _version_tuple(self.version) >= (7, 10):
            return now.strftime("%Y-%m-%d %H:%M:%S")
        return now.strftime("%b/%d/%Y %H:%M:%S").lower()

    def render(self, path: str, row: dict) -> dict:
        """Wire view of one stored row."""
        menu = MENUS[path]
        out = {".id": row[".id"]} if ".id" in row else {}
        live = dict(row)
        if path == "/system/resource":
            suffix = "stable" if self.v7 else "long-term"
            live.update(self.resource, version=f"{self.version} ({suffix})", uptime=str(self.uptime))
        elif path == "/system/clock":
            stamp = self.now_text()
            live.update(date=stamp.split(" ")[0], time=stamp.split(" ")[1])
        for name in menu.field_names(self.v7):
            spec = menu.fields[name]
            if name in live and not spec.secret:
                out[name] = render_value(spec, live[name], self.v7)
        return out

    # --- dispatch --------------------------------------------------------------------

    def _menu(self, path: str) -> Menu:
        menu = MENUS.get(path)
        if menu is None:
            raise SimTrap("no such command prefix", 0)
        return menu

    def execute(self, command: str, attrs: dict, queries: list[str],
                body: bytes | None = None) -> list[tuple[str, dict]]:
        """Answer one command sentence (``!re``/``!empty``/``!done`` pairs) or raise SimTrap.

        ``body`` is what ``/tool/fetch`` downloaded (the session fetches it unlocked).
        """
        path, _, verb = command.rstrip("/").rpartition("/")
        if path not in MENUS:
            raise SimTrap("no such command prefix", 0)
        if verb != "add":
            self._key_cache.clear()
        menu = MENUS[path]
        if verb not in menu.verbs:
            # UNCONFIRMED: RouterOS says "no such command" for a bad verb in a known menu
            raise SimTrap("no such command", 0)
        if verb in ("print", "getall"):
            return self.cmd_print(menu, attrs, queries)
        if verb == "get":
            return self.cmd_get(menu, attrs)
        if verb == "add":
            return [("!done", {"ret": self.cmd_add(menu, attrs)})]
        if verb == "set":
            self.cmd_set(menu, attrs)
        elif verb in ("enable", "disable"):
            for row in self.targets(menu, attrs):
                row["disabled"] = "true" if verb == "disable" else "false"
            self.dirty = True
        elif verb == "remove":
            self.cmd_remove(menu, attrs)
        else:
            return self.extra_command(menu, verb, attrs, body)
        return [("!done", {})]

    # --- generic commands --------------------------------------------------------------

    def cmd_print(self, menu: Menu, attrs: dict, queries: list[str]) -> list[tuple[str, dict]]:
        """``print`` with queries, ``.proplist`` and ``count-only``."""
        rendered = [self.render(menu.path, row) for row in self.tables[menu.path]]
        matched = [row for row in rendered if row_matches(menu, row, queries, self.v7)]
        if "count-only" in attrs:
            return [("!done", {"ret": str(len(matched))})]
        proplist = attrs.get(".proplist")
        if proplist is not None:
            wanted = [p for p in proplist.split(",") if p]
            matched = [{k: row[k] for k in wanted if k in row} for row in matched]
        replies = [("!re", row) for row in matched]
        if not replies and self.empty_replies:
            replies.append(("!empty", {}))
        replies.append(("!done", {}))
        return replies

    def cmd_get(self, menu: Menu, attrs: dict) -> list[tuple[str, dict]]:
        """``get`` one property of one row: ``!done =ret=value``."""
        rows = [self.tables[menu.path][0]] if menu.singleton else self.targets(menu, attrs)
        name = attrs.get("value-name", "")
        rendered = self.render(menu.path, rows[0])
        if name not in rendered:
            # UNCONFIRMED: exact text for an unknown value-name
            raise SimTrap(f"no such property {name}", 1)
        return [("!done", {"ret": rendered[name]})]

    def cmd_add(self, menu: Menu, attrs: dict) -> str:
        """``add``: validate, check the unique key, store; returns the new ``.id``."""
        values = self.validated(menu, attrs, adding=True)
        missing = [name for name, spec in menu.fields.items()
                   if spec.required and name not in values]
        if missing:
            raise SimTrap(f"missing value(s) of argument(s) {' '.join(missing)}", 1)
        self.check_unique(menu, values, None)
        row = self.insert(menu.path, {k: v for k, v in values.items() if v is not None})
        self.after_add(menu.path, row)
        return row[".id"]

    def cmd_set(self, menu: Menu, attrs: dict) -> None:
        """``set`` on the singleton row or on the rows named by ``.id``."""
        rows = self.tables[menu.path][:1] if menu.singleton else self.targets(menu, attrs)
        values = self.validated(menu, attrs, adding=False)
        for row in rows:
            merged = {**row, **values}
            self.check_unique(menu, merged, row)
            old = dict(row)
            for name, value in values.items():
                if value is None:
                    row.pop(name, None)
                else:
                    row[name] = value
            self.after_set(menu.path, old, row)
        self.dirty = True

    def cmd_remove(self, menu: Menu, attrs: dict) -> None:
        """``remove`` the rows named by ``.id`` (a comma list of ids or names)."""
        rows = self.targets(menu, attrs)
        for row in rows:
            if row.get("default") == "true":
                # UNCONFIRMED: exact text when removing a default profile
                raise SimTrap("failure: cannot remove default profile")
        for row in rows:
            self.before_remove(menu.path, row)
            if row in self.tables[menu.path]:
                self.tables[menu.path].remove(row)
        self.dirty = True

    def targets(self, menu: Menu, attrs: dict) -> list[dict]:
        """Rows named by ``.id`` (or ``numbers``): ids like ``*1A`` or key names."""
        wanted = attrs.get(".id", attrs.get("numbers"))
        if wanted is None:
            raise SimTrap("missing value(s) of argument(s) .id", 1)
        rows = []
        name_field = "name" if "name" in menu.fields else (menu.key[-1] if menu.key else None)
        for item in wanted.split(","):
            item = item.strip()
            found = [row for row in self.tables[menu.path]
                     if row.get(".id") == item or (name_field and row.get(name_field) == item)]
            if not found:
                raise SimTrap("no such item")
            rows.extend(r for r in found[:1] if r not in rows)
        return rows

    def validated(self, menu: Menu, attrs: dict, adding: bool) -> dict:
        """Canonical values of the settable attributes; traps on unknown or invalid ones."""
        allowed = set(menu.field_names(self.v7))
        values = {}
        for name, raw in attrs.items():
            if name in (".id", "numbers", ".tag"):
                continue
            spec = menu.fields.get(name)
            if spec is None or name not in allowed or spec.readonly:
                # UNCONFIRMED: exact text for an unknown or read-only argument
                raise SimTrap(f"unknown parameter {name}", 1)
            if raw == "" and not spec.required and spec.kind in ("str", "int") and spec.default is None:
                values[name] = None
                continue
            value = normalize(spec, name, raw)
            if spec.kind == "duration" and not spec.none_ok and value == "0":
                value = None  # limit-uptime=0 means no limit
            if value is not None and spec.ref is not None:
                self.check_ref(name, spec.ref, value)
            choices = ENUMS.get((menu.path, name))
            if choices and value not in choices:
                raise SimTrap(f"input does not match any value of {name}", 1)
            values[name] = value
        return values

    def check_ref(self, name: str, target: tuple, value: str) -> None:
        """Trap unless ``value`` names a row of the referenced menu."""
        menu_path, key, extra = target
        if value in extra or any(row.get(key) == value for row in self.tables[menu_path]):
            return
        raise SimTrap(f"input does not match any value of {name}", 1)

    def check_unique(self, menu: Menu, values: dict, current: dict | None) -> None:
        """Trap when another row already has this row's unique key."""
        if not menu.key:
            return
        key = tuple(values.get(k, menu.fields[k].default) for k in menu.key)
        table = self.tables[menu.path]
        if current is None:
            # A batch of 5,000 adds would otherwise scan the table 5,000 times. The cache
            # lives only across consecutive adds (execute() clears it on any other verb)
            # and is rebuilt whenever the table's size moved behind its back.
            cached = self._key_cache.get(menu.path)
            if cached is None or cached[0] != len(table):
                keys = {tuple(row.get(k) for k in menu.key) for row in table}
            else:
                keys = cached[1]
            if key in keys:
                raise SimTrap(menu.duplicate_message)
            keys.add(key)
            self._key_cache[menu.path] = (len(table) + 1, keys)
            return
        for row in table:
            if row is not current and tuple(row.get(k) for k in menu.key) == key:
                raise SimTrap(menu.duplicate_message)

    # --- hooks that keep related menus consistent ----------------------------------------

    def after_add(self, path: str, row: dict) -> None:
        """Side effects of ``add`` (a bridge is an interface; an address has a network)."""
        if path == "/interface/bridge":
            self.insert("/interface", {"name": row["name"], "type": "bridge",
                                       "mac-address": row["mac-address"]})
        elif path == "/ip/address":
            try:
                network = ipaddress.ip_interface(row["address"]).network
            except ValueError:
                self.tables[path].remove(row)
                # UNCONFIRMED: exact text for a malformed address
                raise SimTrap("invalid value for argument address", 1) from None
            row.setdefault("network", str(network.network_address))
            row["actual-interface"] = row["interface"]
        elif path == "/file":
            row["creation-time"] = self.now_text()
            row["size"] = str(len(row.get("contents", "").encode()))

    def after_set(self, path: str, old: dict, row: dict) -> None:
        """Side effects of ``set`` (renaming a bridge renames its interface)."""
        if path == "/interface/bridge" and old["name"] != row["name"]:
            for iface in self.find("/interface", name=old["name"]):
                iface["name"] = row["name"]
        elif path == "/file":
            row["size"] = str(len(row.get("contents", "").encode()))
        elif path == "/system/ntp/client":
            # UNCONFIRMED: the emulator's NTP reaches its server at once
            row["status"] = "synchronized" if row.get("enabled") == "true" else "stopped"

    def before_remove(self, path: str, row: dict) -> None:
        """Side effects of ``remove`` (hotspot logouts, a bridge's interface)."""
        if path == "/interface/bridge":
            for iface in self.find("/interface", name=row["name"]):
                self.tables["/interface"].remove(iface)
        elif path == "/ip/hotspot/active":
            self.end_session(row)
        elif path == "/ip/hotspot/host":
            for session in self.find("/ip/hotspot/active", **{"mac-address": row.get("mac-address")}):
                self.end_session(session)

    # --- persistence -------------------------------------------------------------------

    def snapshot(self) -> dict:
        """A JSON-ready copy of the state."""
        return {"version": self.version, "tables": copy.deepcopy(self.tables),
                "resource": dict(self.resource),
                "next_id": dict(self.next_id), "uptime": self.uptime,
                "fetched": copy.deepcopy(self.fetched)}

    def restore(self, saved: dict) -> None:
        """Load a snapshot; menus unknown to the snapshot keep their factory rows."""
        for path, rows in saved.get("tables", {}).items():
            if path in MENUS:
                self.tables[path] = rows
        for path, number in saved.get("next_id", {}).items():
            if path in MENUS:
                self.next_id[path] = max(int(number), self.next_id[path])
        self.uptime = int(saved.get("uptime", 0))
        self.resource.update(saved.get("resource", {}))
        self.fetched = list(saved.get("fetched", []))

    def save(self, filename: str) -> None:
        """Write the state as JSON atomically (write a sibling file, then rename)."""
        temporary = f"{filename}.tmp"
        with open(temporary, "w", encoding="utf-8") as handle:
            json.dump(self.snapshot(), handle, indent=1, sort_keys=True)
        os.replace(temporary, filename)
        self.dirty = False

    def load(self, filename: str) -> None:
        """Read a state file written by ``save``."""
        self._key_cache.clear()
        with open(filename, encoding="utf-8") as handle:
            self.restore(json.load(handle))
        self.dirty = False

