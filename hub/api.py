"""The hub's HTTP API: enrollment, signed ingest, the relay (both sides) and monitoring.

Views are thin: parse, call ``ingest`` / ``relay``, answer JSON. Every refusal is a
:class:`HubError` turned into ``{"error": ...}`` by the one handler in ``hub.register``.
"""
from __future__ import annotations

import hmac
import json

from flask import Blueprint, current_app, jsonify, request

from portal.timeutil import utcnow

from . import ingest, relay, reports
from .errors import HubError
from .models import RelayMessage

bp = Blueprint("hub_api", __name__)

ACCEPTED = {"ResultCode": 0, "ResultDesc": "Accepted"}


def signed_path() -> str:
    """The path with its query string exactly as the site signed it."""
    query = request.query_string.decode("latin-1")
    return request.path + ("?" + query if query else "")


def signed_site(slug: str):
    """The site whose valid, fresh, never-seen signature this request carries."""
    body = request.get_data(cache=True)
    return ingest.authenticate(slug, request.method, signed_path(), request.headers, body,
                               utcnow())


@bp.post("/v1/enroll")
def enroll():
    """Spend a one-time token and register the site's public key."""
    return jsonify(ingest.enroll(request.get_data(cache=False), utcnow())), 201


@bp.post("/v1/sites/<slug>/events")
def events(slug: str):
    """A signed batch of 1..500 events, stored once each; answers the ids held."""
    site = signed_site(slug)
    held = ingest.store_events(site, request.get_data(cache=True), utcnow())
    return jsonify(acknowledged=held)


@bp.get("/v1/sites/<slug>/relay")
def relay_fetch(slug: str):
    """Messages held for the site (long-poll up to ``wait`` seconds)."""
    site = signed_site(slug)
    after = _bounded_int(request.args.get("after", "0"), "after", 0, 2**62)
    wait = _bounded_int(request.args.get("wait", "0"), "wait", 0, relay.MAX_WAIT)
    return jsonify(messages=relay.fetch(site, after, wait))


@bp.post("/v1/sites/<slug>/relay/ack")
def relay_ack(slug: str):
    """The site settled these messages: they are not delivered again."""
    site = signed_site(slug)
    try:
        payload = json.loads(request.get_data(cache=True).decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise HubError(400, "body is not JSON") from exc
    if not isinstance(payload, dict):
        raise HubError(400, "body must be a JSON object")
    return jsonify(acknowledged=relay.acknowledge(site, relay.parse_ids(payload), utcnow()))


@bp.post("/relay/<slug>/mpesa/callback/<path:rest>")
def relay_stk_callback(slug: str, rest: str):
    """Safaricom's STK callback for a site behind NAT: held, answered at once."""
    relay.hold(slug, RelayMessage.STK, rest, request.get_data(cache=False),
               request.remote_addr or "", utcnow())
    return jsonify(ACCEPTED)


@bp.post("/relay/<slug>/mpesa/c2b/confirmation")
@bp.post("/relay/<slug>/mpesa/c2b/confirmation/<path:rest>")
def relay_c2b_confirmation(slug: str, rest: str = ""):
    """A C2B confirmation for a site behind NAT: held, answered at once."""
    relay.hold(slug, RelayMessage.C2B, rest, request.get_data(cache=False),
               request.remote_addr or "", utcnow())
    return jsonify(ACCEPTED)


@bp.post("/relay/<slug>/sms/delivery/<path:rest>")
def relay_sms_delivery(slug: str, rest: str):
    """An SMS delivery report (Africa's Talking) for a site behind NAT: held, answered 200."""
    relay.hold(slug, RelayMessage.SMS_DELIVERY, rest, request.get_data(cache=False),
               request.remote_addr or "", utcnow())
    return "", 200


@bp.post("/relay/<slug>/mpesa/c2b/validation")
@bp.post("/relay/<slug>/mpesa/c2b/validation/<path:rest>")
def relay_c2b_validation(slug: str, rest: str = ""):
    """C2B validation: the hub accepts itself (it cannot ask the site in time)."""
    if not ingest.valid_slug(slug):
        raise HubError(404, "unknown site")
    return jsonify(ResultCode="0", ResultDesc="Accepted")


@bp.get("/healthz")
def healthz():
    """For a load balancer or a monitor: the hub answers and its database does too."""
    from peewee import DatabaseError

    from .models import db

    try:
        db.execute_sql("SELECT 1")
    except DatabaseError:
        return jsonify(ok=False, database={"ok": False}), 503
    return jsonify(ok=True, database={"ok": True})


@bp.get("/v1/sites")
def sites():
    """Every site's figures for monitoring, behind ``KIBANDA_HUB_OPERATOR_TOKEN``."""
    expected = str(current_app.config.get("HUB_OPERATOR_TOKEN") or "")
    if not expected:
        raise HubError(503, "no operator token is configured (KIBANDA_HUB_OPERATOR_TOKEN)")
    given = request.headers.get("Authorization", "")
    if not hmac.compare_digest(given.encode("utf-8", "replace"),
                               f"Bearer {expected}".encode("utf-8")):
        raise HubError(401, "operator token required")
    return jsonify(sites=[reports.site_json(row) for row in reports.site_overview(utcnow())])


def _bounded_int(text: str, name: str, low: int, high: int) -> int:
    if not text.isascii() or not text.isdigit() or len(text) > 19 or not low <= int(text) <= high:
        raise HubError(400, f"{name} must be a whole number from {low} to {high}")
    return int(text)
