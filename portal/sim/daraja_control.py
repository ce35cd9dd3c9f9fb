"""The Daraja emulator's HTTP control interface (``DarajaSim(control_port=...)``).

Every route calls the emulator's own methods, the ones tests call in-process:
``fail_next``, ``delay_next_push``, ``set_phone``, ``expire_tokens``, the delay
attributes and ``transactions`` (reported by ``transaction_report``). docs/emulators.md
describes each endpoint.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .control import ControlError, ControlRequest, Route, field, non_negative, unknown_fields
from .daraja_faults import ENDPOINTS, NEVER, PHONE_RULES, daraja_phone
from .daraja_rules import FAULTS, RESULT_DESCS

if TYPE_CHECKING:
    from .daraja import DarajaSim

#: Settings a running emulator takes: seconds, 0 or more.
SETTINGS = ("decision_delay", "callback_delay", "late_callback_delay", "push_response_delay")
PENDING = "pending"


def transaction_report(txn: dict) -> dict:
    """One push as the control interface shows it (from ``DarajaSim.transactions``).

    Until the customer has answered, ``result_code``, ``result_desc`` and ``receipt`` are
    null and ``outcome`` is "pending".
    """
    decided = txn["decided"]
    code = txn["result_code"] if decided else None
    return {
        "checkout_request_id": txn["checkout_request_id"],
        "merchant_request_id": txn["merchant_request_id"],
        "phone": txn["phone"], "amount": txn["amount"],
        "account_reference": txn["account_reference"],
        "transaction_desc": txn["transaction_desc"],
        "transaction_type": txn["transaction_type"], "party_b": txn["party_b"],
        "callback_url": txn["callback_url"],
        "pushed_at": txn["pushed_at"].strftime("%Y-%m-%dT%H:%M:%SZ"),
        "outcome": txn["outcome"] if decided else PENDING,
        "result_code": code,
        "result_desc": RESULT_DESCS.get(code, "Failed") if decided else None,
        "receipt": txn["receipt"] if decided else None,
        "callback": txn["delivery"],
        "callbacks_sent": txn["callbacks_sent"],
        "callback_statuses": list(txn["callback_statuses"]),
        "callback_errors": list(txn["callback_errors"]),
    }


def payment_report(payment: dict) -> dict:
    """One payment from the menu as the control interface shows it."""
    return {**payment, "paid_at": payment["paid_at"].strftime("%Y-%m-%dT%H:%M:%SZ")}


def _answer_value(body: dict, name: str) -> Any:
    """A push answer: seconds (0 or more) or "never"; null clears it."""
    value = body[name]
    if value is None or value == NEVER:
        return value
    return non_negative(name, field(body, name, float))


def _phone(text: str) -> str:
    try:
        return daraja_phone(text)
    except ValueError as exc:
        raise ControlError(400, str(exc)) from None


def control_routes(sim: "DarajaSim") -> list[Route]:
    """The Daraja emulator's control endpoints, bound to ``sim``."""

    def settings() -> dict:
        return {name: getattr(sim, name) for name in SETTINGS}

    def status(_request: ControlRequest) -> dict:
        return {"emulator": "daraja", "base_url": sim.base_url,
                "control_port": sim.control_port, "shortcode": sim.shortcode,
                "token_requests": sim.token_requests, "push_requests": sim.push_requests,
                "query_requests": sim.query_requests,
                "transactions": len(sim.transactions), **settings()}

    def read_settings(_request: ControlRequest) -> dict:
        return settings()

    def change_settings(request: ControlRequest) -> dict:
        unknown_fields(request.body, set(SETTINGS))
        # Check every value before changing any, so a refused request changes nothing.
        changes = {name: non_negative(name, field(request.body, name, float))
                   for name in SETTINGS if name in request.body}
        for name, value in changes.items():
            setattr(sim, name, value)
        return settings()

    def queue_fault(request: ControlRequest) -> dict:
        unknown_fields(request.body, {"kind", "on", "count"})
        kind = field(request.body, "kind", str)
        on = field(request.body, "on", str, "push")
        count = field(request.body, "count", int, 1)
        if kind not in FAULTS:
            raise ControlError(400, f"kind must be one of {', '.join(sorted(FAULTS))}")
        if on not in ENDPOINTS:
            raise ControlError(400, f"on must be one of {', '.join(ENDPOINTS)}")
        if count < 1:
            raise ControlError(400, "count must be 1 or more")
        sim.fail_next(kind, count, on)
        return sim.fault_plan.faults()

    def read_faults(_request: ControlRequest) -> dict:
        return sim.fault_plan.faults()

    def clear_faults(_request: ControlRequest) -> dict:
        sim.fault_plan.clear()
        return sim.fault_plan.faults()

    def next_push(request: ControlRequest) -> dict:
        unknown_fields(request.body, {"answer", "count"})
        count = field(request.body, "count", int, 1)
        if count < 1:
            raise ControlError(400, "count must be 1 or more")
        if "answer" not in request.body or request.body["answer"] is None:
            raise ControlError(400, 'answer is missing: seconds, or "never"')
        answer = _answer_value(request.body, "answer")
        if answer == NEVER:
            sim.fail_next("drop", count, "push")
        else:
            sim.delay_next_push(answer, count)
        return sim.fault_plan.faults()

    def read_phones(_request: ControlRequest) -> dict:
        return {"phones": sim.fault_plan.phones()}

    def change_phone(request: ControlRequest) -> dict:
        body = request.body
        unknown_fields(body, set(PHONE_RULES))
        phone = _phone(request.params["phone"])
        rules = dict(body)
        if "push_answer" in body:
            rules["push_answer"] = _answer_value(body, "push_answer")
        try:
            return {"phone": phone, "rules": sim.set_phone(phone, **rules)}
        except ValueError as exc:
            raise ControlError(400, str(exc)) from None

    def clear_phone(request: ControlRequest) -> dict:
        phone = _phone(request.params["phone"])
        if not sim.fault_plan.clear_phone(phone):
            raise ControlError(404, f"no rules for {phone}")
        return {"phone": phone, "rules": {}}

    def transactions(request: ControlRequest) -> dict:
        rows = [transaction_report(txn) for txn in sim.transactions]
        if "phone" in request.query:
            phone = _phone(request.query["phone"])
            rows = [row for row in rows if row["phone"] == phone]
        return {"transactions": rows}

    def transaction(request: ControlRequest) -> dict:
        try:
            return transaction_report(sim.transaction(request.params["checkout"]))
        except KeyError:
            raise ControlError(404, f"no push {request.params['checkout']}") from None

    def pay_from_menu(request: ControlRequest) -> dict:
        body = request.body
        unknown_fields(body, {"phone", "amount", "account", "till", "confirmation"})
        phone = _phone(field(body, "phone", str))
        amount = field(body, "amount", int)
        if amount < 1:
            raise ControlError(400, "amount must be 1 or more (whole KES)")
        till = field(body, "till", bool, False)
        account = field(body, "account", str, "")
        if not till and not account:
            raise ControlError(400, "a PayBill payment needs an account (or till: true)")
        confirmation = field(body, "confirmation", str, "sent")
        if confirmation not in ("sent", "lost"):
            raise ControlError(400, 'confirmation must be "sent" or "lost"')
        return payment_report(sim.pay_from_menu(phone, amount, account or None, till=till,
                                                confirmation=confirmation))

    def menu_payments(_request: ControlRequest) -> dict:
        return {"payments": [payment_report(p) for p in sim.c2b.payments],
                "registrations": sim.c2b.registrations,
                "pull_registrations": sim.c2b.pull_registrations}

    def expire_tokens(_request: ControlRequest) -> dict:
        sim.expire_tokens()
        return {"expired": True}

    return [
        Route("GET", "/status", status),
        Route("GET", "/settings", read_settings),
        Route("POST", "/settings", change_settings),
        Route("GET", "/faults", read_faults),
        Route("POST", "/faults", queue_fault),
        Route("DELETE", "/faults", clear_faults),
        Route("POST", "/next-push", next_push),
        Route("GET", "/phones", read_phones),
        Route("POST", "/phones/<phone>", change_phone),
        Route("DELETE", "/phones/<phone>", clear_phone),
        Route("GET", "/transactions", transactions),
        Route("GET", "/transactions/<checkout>", transaction),
        Route("POST", "/tokens/expire", expire_tokens),
        Route("POST", "/c2b/pay", pay_from_menu),
        Route("GET", "/c2b/payments", menu_payments),
    ]
