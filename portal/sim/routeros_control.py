"""The RouterOS emulator's HTTP control interface (``RouterSim(control_port=...)``).

Every route calls one of ``RouterSim``'s own methods, the ones tests call in-process:
``drop_connections``, ``drop_after``, ``refuse_logins``, ``latency_ms``,
``max_sessions``, ``reboot``, ``factory_reset``, ``device_joins``, ``device_leaves``,
``rows``, ``advance``, ``add_traffic``, ``set_resource``, ``file_bytes`` and ``device_logs_in``. docs/emulators.md describes each endpoint.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from portal.sim.control import (
    ControlError, ControlRequest, Route, field, non_negative, unknown_fields,
)
from portal.sim.routeros_hotspot import NoHotspotServer
from portal.sim.routeros_menus import SimTrap

if TYPE_CHECKING:
    from portal.sim.routeros import RouterSim

SETTINGS = {"refuse_logins", "latency_ms", "max_sessions"}


def control_routes(sim: "RouterSim") -> list[Route]:
    """The router's control endpoints, bound to ``sim``."""

    def settings() -> dict:
        return {"refuse_logins": sim.refuse_logins, "latency_ms": sim.latency_ms,
                "max_sessions": sim.max_sessions}

    def status(_request: ControlRequest) -> dict:
        return {"emulator": "routeros", "version": sim.version, "host": sim.host,
                "api_port": sim.port, "control_port": sim.control_port,
                "open_connections": sim.open_connections, **settings()}

    def read_settings(_request: ControlRequest) -> dict:
        return settings()

    def change_settings(request: ControlRequest) -> dict:
        body = request.body
        unknown_fields(body, SETTINGS)
        # Check every value before changing any, so a refused request changes nothing.
        refuse = field(body, "refuse_logins", bool, None)
        latency = field(body, "latency_ms", float, None)
        sessions = field(body, "max_sessions", int, None)
        if latency is not None:
            non_negative("latency_ms", latency)
        if sessions is not None and sessions < 1:
            raise ControlError(400, "max_sessions must be 1 or more")
        if refuse is not None:
            sim.refuse_logins = refuse
        if latency is not None:
            sim.latency_ms = latency
        if sessions is not None:
            sim.max_sessions = sessions
        return settings()

    def drop(request: ControlRequest) -> dict:
        unknown_fields(request.body, {"after_replies"})
        after = field(request.body, "after_replies", int, None)
        if after is None:
            return {"dropped": sim.drop_connections()}
        if after < 0:
            raise ControlError(400, "after_replies must be 0 or more")
        sim.drop_after(after)
        return {"drop_after_replies": after}

    def reboot(_request: ControlRequest) -> dict:
        sim.reboot()
        return {"rebooted": True}

    def factory_reset(_request: ControlRequest) -> dict:
        sim.factory_reset()
        return {"factory_reset": True}

    def join(request: ControlRequest) -> tuple[int, dict]:
        unknown_fields(request.body, {"ip", "mac"})
        ip, mac = field(request.body, "ip", str), field(request.body, "mac", str)
        try:
            return 201, sim.device_joins(ip, mac)
        except NoHotspotServer as exc:
            raise ControlError(409, str(exc)) from None
        except ValueError as exc:
            raise ControlError(400, str(exc)) from None

    def page_login(request: ControlRequest) -> tuple[int, dict]:
        body = request.body
        unknown_fields(body, {"user", "password", "ip", "mac"})
        values = [field(body, name, str) for name in ("user", "password", "ip", "mac")]
        try:
            return 201, sim.device_logs_in(*values)
        except SimTrap as exc:
            raise ControlError(403, f"login refused: {exc}") from None
        except ValueError as exc:
            raise ControlError(400, str(exc)) from None

    def leave(request: ControlRequest) -> dict:
        removed = sim.device_leaves(request.params["who"])
        if not removed:
            raise ControlError(404, f"no host {request.params['who']} in /ip/hotspot/host")
        return {"removed": removed}

    def table(request: ControlRequest) -> dict:
        path = "/" + request.params["menu"].strip("/")
        try:
            rows = sim.rows(path)
        except SimTrap:
            raise ControlError(404, f"no menu {path}") from None
        # ?name=value keeps the rows whose printed value is exactly that (a print query's =)
        rows = [row for row in rows
                if all(row.get(name) == value for name, value in request.query.items())]
        return {"menu": path, "rows": rows}

    def clock(request: ControlRequest) -> dict:
        unknown_fields(request.body, {"advance"})
        seconds = field(request.body, "advance", int)
        non_negative("advance", seconds)
        sim.advance(seconds)
        return {"uptime": sim.rows("/system/resource")[0]["uptime"]}

    def traffic(request: ControlRequest) -> dict:
        unknown_fields(request.body, {"who", "bytes_in", "bytes_out"})
        who = field(request.body, "who", str)
        counts = [non_negative(name, field(request.body, name, int, 0))
                  for name in ("bytes_in", "bytes_out")]
        return {"sessions": sim.add_traffic(who, *counts)}

    def resource(request: ControlRequest) -> dict:
        body = request.body
        unknown_fields(body, {"architecture_name", "board_name", "free_memory", "total_memory",
                              "cpu"})
        for name in ("free_memory", "total_memory"):
            if name in body:
                non_negative(name, field(body, name, int))
        for name in ("architecture_name", "board_name", "cpu"):
            if name in body:
                field(body, name, str)
        return sim.set_resource(**body)

    def file(request: ControlRequest) -> dict:
        name = request.params["name"]
        data = sim.file_bytes(name)
        if data is None:
            raise ControlError(404, f"no file {name} on the router")
        return {"name": name, "size": len(data), "contents": data.decode("utf-8", "replace")}

    return [
        Route("GET", "/status", status),
        Route("POST", "/resource", resource),
        Route("GET", "/files/<path:name>", file),
        Route("GET", "/settings", read_settings),
        Route("POST", "/settings", change_settings),
        Route("POST", "/connections/drop", drop),
        Route("POST", "/reboot", reboot),
        Route("POST", "/factory-reset", factory_reset),
        Route("POST", "/hosts", join),
        Route("DELETE", "/hosts/<who>", leave),
        Route("POST", "/login", page_login),
        Route("GET", "/tables/<path:menu>", table),
        Route("POST", "/clock", clock),
        Route("POST", "/traffic", traffic),
    ]
