"""``POST /mpesa/callback/<secret>``: Daraja's STK results, settled and acknowledged.

Callbacks carry no signature: the secret path token (and, where configured, the source
address) is what keeps strangers out. Well-formed bodies are always acknowledged so
Safaricom stops retrying; what was done about each one is in CallbackRecord.
"""
from __future__ import annotations

import hmac
import ipaddress
import logging
import re

from flask import Blueprint, abort, current_app, jsonify, request

from ..ledger import grants, settlement
from ..timeutil import utcnow
from . import app_router

bp = Blueprint("mpesa_callback", __name__)
log = logging.getLogger(__name__)

ACCEPTED = {"ResultCode": 0, "ResultDesc": "Accepted"}
_SECRET_IN_PATH = re.compile(
    r"(/mpesa/(?:callback|c2b/confirmation|c2b/validation|status/result|status/timeout))"
    r"/[^\s?\"']+")


def redact_secret(text: str) -> str:
    """``text`` (a request line, a path, a log message) with the callback secret as ``***``."""
    return _SECRET_IN_PATH.sub(r"\1/***", text)


#: ``CALLBACK_ALLOWED_IPS=safaricom``: the addresses Safaricom's callbacks are widely
#: reported to come from (no official list exists: a secondary check, never the only one).
SAFARICOM_CALLBACK_SOURCES = (
    "196.201.214.200", "196.201.214.206", "196.201.214.207", "196.201.214.208",
    "196.201.213.114", "196.201.213.44", "196.201.212.127", "196.201.212.128",
    "196.201.212.129", "196.201.212.132", "196.201.212.136", "196.201.212.138",
    "196.201.212.69", "196.201.212.74",
)


def source_allowed(remote_addr: str, allowed: str) -> bool:
    """True when no list is configured, or ``remote_addr`` is in one of its networks.

    The list is comma-separated addresses or networks; the word ``safaricom`` stands for
    :data:`SAFARICOM_CALLBACK_SOURCES`.
    """
    networks = []
    for item in str(allowed or "").split(","):
        item = item.strip()
        if item.lower() == "safaricom":
            networks.extend(SAFARICOM_CALLBACK_SOURCES)
        elif item:
            networks.append(item)
    if not networks:
        return True
    try:
        address = ipaddress.ip_address(remote_addr or "")
    except ValueError:
        return False
    for network in networks:
        try:
            if address in ipaddress.ip_network(network, strict=False):
                return True
        except ValueError:
            log.warning("CALLBACK_ALLOWED_IPS: %r is not an address or network", network)
    return False


@bp.post("/mpesa/callback/<secret>")
@bp.post("/mpesa/callback/<secret>/<string(maxlength=32):reference>")
def stk_callback(secret: str, reference: str | None = None):
    """Settle one STK callback; provision the grant it earned right away.

    ``reference`` (each purchase's CallBackURL carries its own) finds the purchase even
    when the push's answer, and so its CheckoutRequestID, never came back.
    """
    config = current_app.config
    expected = str(config.get("CALLBACK_SECRET") or "")
    if not expected or not hmac.compare_digest(secret.encode(), expected.encode()):
        abort(404)
    now = utcnow()
    body = request.get_data(cache=False)
    if not source_allowed(request.remote_addr or "", config.get("CALLBACK_ALLOWED_IPS", "")):
        settlement.record_refused(body, request.remote_addr or "", now,
                                  "source address not in CALLBACK_ALLOWED_IPS")
        return jsonify(ResultCode=1, ResultDesc="Rejected"), 403
    outcome, purchase = settlement.record_callback(body, request.remote_addr or "", now,
                                                   reference=reference)
    if outcome == settlement.MALFORMED:
        return jsonify(ResultCode=1, ResultDesc="Rejected: malformed body"), 400
    if outcome in (settlement.SETTLED, settlement.LATE) and purchase is not None:
        # Outside the settlement transaction: a router that is down only delays access.
        grants.provision_if_due(grants.grant_for(purchase), app_router(), now)
    return jsonify(ACCEPTED)
