"""The SMS emulator's HTTP control interface (``SmsSim(control_port=...)``).

Every route calls the emulator's own methods, the ones tests call in-process: ``refuse``,
``fail_next``, ``set_slow``, ``deliver``, the settings and ``messages``.
docs/emulators.md describes each endpoint.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .control import ControlError, ControlRequest, Route, field, non_negative, unknown_fields
from .sms_rules import INVALID_SENDER_ANSWERS, REFUSALS

if TYPE_CHECKING:
    from .sms import SmsSim


def message_report(row: dict) -> dict:
    """One row of ``SmsSim.messages`` as the control interface shows it."""
    return {**row, "received_at": row["received_at"].strftime("%Y-%m-%dT%H:%M:%SZ")}


def control_routes(sim: "SmsSim") -> list[Route]:
    """The SMS emulator's control endpoints, bound to ``sim``."""

    def settings() -> dict:
        return {"balance_kes": sim.balance_kes, "delivery_delay": sim.delivery_delay,
                "auto_deliver": sim.auto_deliver, "slow_seconds": sim.slow_seconds,
                "delivery_report_url": sim.delivery_report_url,
                "invalid_sender_answer": sim.invalid_sender_answer}

    def status(_request: ControlRequest) -> dict:
        return {"emulator": "sms", "url": sim.url, "control_port": sim.control_port,
                "username": sim.username, "sender_ids": list(sim.sender_ids),
                "requests": sim.requests, "messages": len(sim.messages), **settings()}

    def read_settings(_request: ControlRequest) -> dict:
        return settings()

    def change_settings(request: ControlRequest) -> dict:
        body = request.body
        unknown_fields(body, set(settings()))
        # Check every value before changing any, so a refused request changes nothing.
        changes = {}
        for name in ("balance_kes", "delivery_delay", "slow_seconds"):
            if name in body:
                changes[name] = non_negative(name, field(body, name, float))
        if "auto_deliver" in body:
            changes["auto_deliver"] = field(body, "auto_deliver", bool)
        if "delivery_report_url" in body:
            url = field(body, "delivery_report_url", (str, type(None)))
            if url is not None and not url.startswith(("http://", "https://")):
                raise ControlError(400, "delivery_report_url must be an http(s) URL or null")
            changes["delivery_report_url"] = url
        if "invalid_sender_answer" in body:
            answer = field(body, "invalid_sender_answer", str)
            if answer not in INVALID_SENDER_ANSWERS:
                raise ControlError(400, "invalid_sender_answer must be one of "
                                        f"{', '.join(INVALID_SENDER_ANSWERS)}")
            changes["invalid_sender_answer"] = answer
        for name, value in changes.items():
            if name == "slow_seconds":
                sim.set_slow(value)
            else:
                setattr(sim, name, value)
        return settings()

    def refuse(request: ControlRequest) -> dict:
        unknown_fields(request.body, {"number", "status_code"})
        number = field(request.body, "number", str)
        code = field(request.body, "status_code", (int, type(None)))
        if code is not None and code not in REFUSALS:
            raise ControlError(400, "status_code must be one of "
                                    f"{', '.join(map(str, REFUSALS))}, or null")
        sim.refuse(number, code)
        return {"refusals": sim.refusals()}

    def read_refusals(_request: ControlRequest) -> dict:
        return {"refusals": sim.refusals()}

    def fail_next(request: ControlRequest) -> dict:
        unknown_fields(request.body, {"count", "mode", "seconds"})
        count = field(request.body, "count", int, 1)
        mode = field(request.body, "mode", str)
        seconds = request.body.get("seconds")
        if seconds is not None:
            seconds = non_negative("seconds", field(request.body, "seconds", float))
        try:
            sim.fail_next(count, mode)
        except ValueError as exc:
            raise ControlError(400, str(exc)) from None
        if seconds is not None:
            sim.set_slow(seconds)
        return {"faults": sim.faults(), "slow_seconds": sim.slow_seconds}

    def read_faults(_request: ControlRequest) -> dict:
        return {"faults": sim.faults(), "slow_seconds": sim.slow_seconds}

    def clear_faults(_request: ControlRequest) -> dict:
        sim.clear_faults()
        return {"faults": [], "slow_seconds": sim.slow_seconds}

    def deliver(request: ControlRequest) -> dict:
        body = request.body
        unknown_fields(body, {"message_id", "status", "failure_reason"})
        message_id = field(body, "message_id", str)
        try:
            http_status = sim.deliver(message_id, field(body, "status", str, "Success"),
                                      field(body, "failure_reason", (str, type(None)), None))
        except KeyError:
            raise ControlError(404, f"no accepted message {message_id}") from None
        except ValueError as exc:
            raise ControlError(400, str(exc)) from None
        return {"message": message_report(sim.message(message_id)),
                "http_status": http_status}

    def messages(request: ControlRequest) -> dict:
        rows = [message_report(row) for row in list(sim.messages)]
        if "to" in request.query:
            rows = [row for row in rows if row["to"] == request.query["to"]]
        return {"messages": rows}

    def reports(_request: ControlRequest) -> dict:
        return {"delivery_reports": list(sim.delivery_reports)}

    return [
        Route("GET", "/status", status),
        Route("GET", "/settings", read_settings),
        Route("POST", "/settings", change_settings),
        Route("GET", "/refusals", read_refusals),
        Route("POST", "/refuse", refuse),
        Route("GET", "/faults", read_faults),
        Route("POST", "/fail-next", fail_next),
        Route("DELETE", "/faults", clear_faults),
        Route("POST", "/deliver", deliver),
        Route("GET", "/messages", messages),
        Route("GET", "/delivery-reports", reports),
    ]
