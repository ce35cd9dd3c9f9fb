"""``GET /healthz``: database, router, M-Pesa configuration and backlog, as JSON."""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from ..errors import RouterError
from ..models import Grant, OutboxEvent, Purchase, db
from . import app_router

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
        }
    except Exception as exc:  # noqa: BLE001 - a health check reports, it does not raise
        report["database"] = {"ok": False, "error": str(exc)}
    report["router"] = _router_health()
    report["mpesa"] = mpesa_configured(current_app.config)
    ok = report["database"]["ok"] and report["router"].get("ok", False)
    report["ok"] = bool(ok)
    return jsonify(report), 200 if ok else 503


def _router_health() -> dict:
    try:
        health = app_router().health()
    except RouterError as exc:
        return {"ok": False, "error": exc.operator_message}
    return {"ok": True, **health}
