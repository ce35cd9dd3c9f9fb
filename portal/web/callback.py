"""``POST /mpesa/callback/<secret>``: Daraja's STK results, settled and acknowledged.

Callbacks carry no signature: the secret path token (and, where configured, the source
address) is what keeps strangers out. Well-formed bodies are always acknowledged so
Safaricom stops retrying; what was done about each one is in CallbackRecord.
"""
from __future__ import annotations

import logging
import re

from flask import Blueprint, abort, current_app, jsonify, request

from ..ledger import callbacks
from ..ledger.callbacks import ACCEPTED, SAFARICOM_CALLBACK_SOURCES, source_allowed
from ..timeutil import utcnow
from . import app_router

bp = Blueprint("mpesa_callback", __name__)
log = logging.getLogger(__name__)
#: Kept here too for the modules that read them from the web room.
__all__ = ["ACCEPTED", "SAFARICOM_CALLBACK_SOURCES", "source_allowed", "redact_secret", "bp"]
_SECRET_IN_PATH = re.compile(
    r"(/mpesa/(?:callback|c2b/confirmation|c2b/validation|status/result|status/timeout))"
    r"/[^\s?\"']+|(/sms/delivery)/[^\s?\"']+")


def redact_secret(text: str) -> str:
    """``text`` (a request line, a path, a log message) with the callback secret as ``***``."""
    return _SECRET_IN_PATH.sub(lambda m: (m.group(1) or m.group(2)) + "/***", text)


@bp.post("/mpesa/callback/<secret>")
@bp.post("/mpesa/callback/<secret>/<string(maxlength=32):reference>")
def stk_callback(secret: str, reference: str | None = None):
    """Settle one STK callback; provision the grant it earned right away.

    ``reference`` (each purchase's CallBackURL carries its own) finds the purchase even
    when the push's answer, and so its CheckoutRequestID, never came back.
    """
    status, answer = callbacks.receive_stk_callback(
        current_app.config, secret, reference, request.get_data(cache=False),
        request.remote_addr or "", utcnow(), app_router)
    if answer is None:
        abort(status)
    return jsonify(answer), status
