"""``GET /healthz``: database, router, M-Pesa configuration, the agent and backlog, as JSON.

``GET /healthz?require=agent`` also answers 503 when the agent's last heartbeat is missing
or older than three intervals (the appliance image's HEALTHCHECK). Anyone (a phone on the
hotspot too) learns only ok / not ok, the heartbeat's age and the backlog counts. The
details (the router's address, identity, version and board, errors, which M-Pesa settings
are missing) are for a signed-in owner, or a request from the appliance itself.
"""
from __future__ import annotations

import ipaddress

from flask import Blueprint, current_app, jsonify, request

from .. import upstream
from ..errors import RouterError
from ..models import AdminUser, Grant, OutboxEvent, Purchase, SmsMessage, db
from ..timeutil import utcnow
from ..venue import heartbeat
from . import app_router
from .admin import session_user

bp = Blueprint("health", __name__)


def mpesa_configured(config) -> dict:
    """Which Daraja settings are present (never their values)."""
    needed = ["MPESA_CONSUMER_KEY", "MPESA_CONSUMER_SECRET", "MPESA_SHORTCODE",
              "MPESA_PASSKEY"]
    missing = [name for name in needed if not config.get(name)]
    if str(config.get("MPESA_TYPE", "paybill")).lower() == "till" and not config.get("MPESA_PARTYB"):
        missing.append("MPESA_PARTYB")
    return {"configured": not missing, "missing": missing,
            "type": config.get("MPESA_TYPE"), "base_url": config.get("MPESA_BASE_URL")}


@bp.get("/healthz")
def healthz():
    """Report whether this site can sell right now."""
    report: dict = {}
    try:
        db.execute_sql("SELECT 1")
        report["database"] = {"ok": True}
        report["backlog"] = {
            "pending_purchases": Purchase.select().where(Purchase.status.in_(Purchase.OPEN)).count(),
            "grants_waiting_for_router": Grant.select().where(Grant.router_state == Grant.PENDING).count(),
            "events_not_sent": OutboxEvent.select().where(OutboxEvent.sent_at.is_null()).count(),
            # SMS waiting to leave (receipts, reminders, the owner's messages); 0 when off.
            "sms_queued": SmsMessage.select().where(SmsMessage.state.in_(
                (SmsMessage.QUEUED, SmsMessage.SENDING))).count(),
        }
        sync = upstream.sync_status(current_app.config)
        # ok, retrying, stopped (the hub refused: an error an owner must see) or not enrolled.
        report["backlog"]["upstream"] = sync.state
        report["sync"] = sync.as_dict()
    except Exception as exc:  # noqa: BLE001 - a health check reports, it does not raise
        report["database"] = {"ok": False, "error": str(exc)}
    report["router"] = _router_health()
    report["mpesa"] = mpesa_configured(current_app.config)
    report["agent"] = _agent_health(report["database"]["ok"])
    ok = report["database"]["ok"] and report["router"].get("ok", False)
    if "agent" in request.args.getlist("require"):
        # The appliance image's HEALTHCHECK: a stopped agent makes the container unhealthy.
        ok = ok and report["agent"]["ok"]
    report["ok"] = bool(ok)
    if not may_see_details():
        report = public_report(report)
    return jsonify(report), 200 if ok else 503


def public_report(report: dict) -> dict:
    """What anyone may know: ok or not per part, and the backlog counts."""
    return {"ok": report["ok"], "database": {"ok": report["database"]["ok"]},
            "router": {"ok": bool(report["router"].get("ok"))},
            "mpesa": {"configured": report["mpesa"]["configured"]},
            "agent": report["agent"], "backlog": report.get("backlog", {})}


def may_see_details() -> bool:
    """A request from the appliance itself (loopback), or from a signed-in owner."""
    try:
        address = ipaddress.ip_address(request.remote_addr or "")
    except ValueError:
        address = None
    if address is not None:
        mapped = getattr(address, "ipv4_mapped", None)
        if (mapped or address).is_loopback:
            return True
    user = session_user()
    return user is not None and user.role == AdminUser.OWNER


def _agent_health(database_ok: bool) -> dict:
    """Is the agent alive: its last heartbeat's age in seconds (None: never, or unknown)."""
    if not database_ok:
        return {"ok": False, "heartbeat_age": None}
    state = heartbeat.agent_state(utcnow(), heartbeat.interval_seconds(current_app.config))
    return {"ok": not state.stale, "heartbeat_age": state.age_seconds}


def _router_health() -> dict:
    try:
        health = app_router().health()
    except RouterError as exc:
        return {"ok": False, "error": exc.operator_message}
    return {"ok": True, **health}
