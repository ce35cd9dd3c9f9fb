"""``POST /sms/delivery/<secret>``: Africa's Talking's delivery reports.

Like the M-Pesa callback, the secret in the path keeps strangers out; every report with
the right secret is answered 200 (an unknown id is ignored) so the provider stops
retrying, and nothing a stranger sends can make a 5xx.
"""
from __future__ import annotations

from flask import Blueprint, abort, current_app, request

from ..ledger import sms
from ..timeutil import utcnow

bp = Blueprint("sms_delivery", __name__)


@bp.post("/sms/delivery/<string(maxlength=64):secret>")
def delivery_report(secret: str):
    """Record one delivery report."""
    form = {name: request.form.get(name, "") for name in ("id", "status", "failureReason")}
    if sms.receive_delivery(current_app.config, secret, form, utcnow()) != 200:
        abort(404)
    return "", 200
