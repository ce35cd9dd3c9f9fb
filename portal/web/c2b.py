"""``POST /mpesa/c2b/confirmation/<secret>`` and ``/validation/<secret>``: payments made
from the M-Pesa menu (PayBill or Till), recorded, matched and acknowledged; and
``/mpesa/status/result/<secret>``: a Transaction Status answer about a typed receipt.

Same protection as the STK callback (the secret path token and, where configured, the
source address); the work is :func:`portal.ledger.c2b.record_confirmation`, which the
agent's hub relay calls too.
"""
from __future__ import annotations

import hmac
import json

from flask import Blueprint, abort, current_app, jsonify, request

from ..errors import MalformedCallback
from ..ledger import c2b, grants, settlement
from ..mpesa.status import parse_status_result
from ..timeutil import utcnow
from . import app_router
from .callback import source_allowed

bp = Blueprint("mpesa_c2b", __name__)

CONFIRMED = {"ResultCode": 0, "ResultDesc": "Success"}


def _guard() -> bytes:
    """The body, once the secret and the source address are checked (404 / 403 otherwise)."""
    config = current_app.config
    expected = str(config.get("CALLBACK_SECRET") or "")
    secret = request.view_args.get("secret", "")
    if not expected or not hmac.compare_digest(secret.encode(), expected.encode()):
        abort(404)
    body = request.get_data(cache=False)[:c2b.MAX_BODY + 1]
    if not source_allowed(request.remote_addr or "", config.get("CALLBACK_ALLOWED_IPS", "")):
        settlement.record_refused(body, request.remote_addr or "", utcnow(),
                                  "C2B: source address not in CALLBACK_ALLOWED_IPS")
        abort(403)
    return body


@bp.post("/mpesa/c2b/confirmation/<secret>")
def confirmation(secret: str):
    """Record and credit one C2B payment; log its device in when a purchase waited."""
    body = _guard()
    now = utcnow()
    result = c2b.record_confirmation(body, source_ip=request.remote_addr or "",
                                     via="direct", now=now)
    if result.outcome == c2b.MALFORMED:
        return jsonify(ResultCode=1, ResultDesc="Rejected: malformed body"), 400
    if result.outcome == c2b.CREDITED:
        # Outside the settlement transaction: a router that is down only delays access.
        grants.provision_if_due(result.grant, app_router(), now)
    return jsonify(CONFIRMED)


@bp.post("/mpesa/c2b/validation/<secret>")
def validation(secret: str):
    """Tell M-Pesa whether to take a payment (cents, below every package: refused)."""
    body = _guard()
    try:
        payload = json.loads(body.decode("utf-8", errors="replace"))
    except ValueError:
        payload = None
    accepted, reason = c2b.validate(
        payload, reject_unknown_accounts=bool(
            current_app.config.get("C2B_REJECT_UNKNOWN_ACCOUNTS")))
    if accepted:
        return jsonify(ResultCode="0", ResultDesc="Accepted")
    current_app.logger.info("C2B validation refused: %s", reason)
    return jsonify(ResultCode="C2B00011", ResultDesc="Rejected")


@bp.post("/mpesa/status/result/<secret>")
def status_result(secret: str):
    """A Transaction Status result: a completed payment is settled like a confirmation."""
    body = _guard()
    now = utcnow()
    try:
        payment = parse_status_result(body)
    except MalformedCallback as exc:
        settlement.record_refused(body, request.remote_addr or "", now, exc.operator_message)
        return jsonify(ResultCode=1, ResultDesc="Rejected: malformed body"), 400
    if payment is not None:
        result = c2b.record_confirmation(payment, source_ip=request.remote_addr or "",
                                         via="lookup", now=now)
        if result.outcome == c2b.CREDITED:
            grants.provision_if_due(result.grant, app_router(), now)
    return jsonify(ResultCode=0, ResultDesc="Accepted")


@bp.post("/mpesa/status/timeout/<secret>")
def status_timeout(secret: str):
    """M-Pesa's queue timed out the question: nothing to settle (the customer asks again)."""
    _guard()
    current_app.logger.info("Transaction Status question timed out in M-Pesa's queue")
    return jsonify(ResultCode=0, ResultDesc="Accepted")
