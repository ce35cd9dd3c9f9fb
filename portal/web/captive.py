"""``GET /api/captive``: the RFC 8908 captive-portal API, for the device asking.

Phones learn this address from DHCP option 114 (RFC 8910; ``kibanda provision`` sets it)
and ask it before and after paying: "captive" opens the login sheet at once, and
``seconds-remaining`` shows the time left. The device is the request's own address
(``portal/ledger/captive.py``); nothing the phone sends is read.
"""
from __future__ import annotations

import json

from flask import Blueprint, Response, current_app, request

from ..ledger.captive import captive_state
from ..timeutil import utcnow
from . import app_router

bp = Blueprint("captive", __name__)
CONTENT_TYPE = "application/captive+json"


def portal_base() -> str:
    """Where phones reach the portal (PORTAL_URL), without a trailing slash."""
    return str(current_app.config.get("PORTAL_URL") or request.host_url).rstrip("/")


@bp.get("/api/captive")
def captive_api():
    """RFC 8908 JSON: captive, user-portal-url, venue-info-url, seconds-remaining."""
    state = captive_state(app_router(), request.remote_addr or "", utcnow())
    base = portal_base()
    body = {"captive": state.captive, "user-portal-url": f"{base}/",
            "venue-info-url": f"{base}/", "can-extend-session": True}
    if state.seconds_remaining is not None:
        body["seconds-remaining"] = state.seconds_remaining
    response = Response(json.dumps(body), mimetype=CONTENT_TYPE)
    # RFC 8908 section 5: the state is the device's own and changes when it pays.
    response.headers["Cache-Control"] = "private, no-store"
    return response
