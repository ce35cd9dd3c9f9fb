"""The web room: every Flask blueprint, the error handlers and what pages share.

``register(app)`` is all the application factory calls. The per-process router gateway
and M-Pesa client (``app_router``, ``app_mpesa``) and the venue's branding for this
request (``current_branding``) live here because only views need them in that form.
"""
from __future__ import annotations

import logging
import re
import secrets

from flask import Flask, current_app, g, jsonify, render_template, request
from peewee import DatabaseError
from werkzeug.routing import IntegerConverter

from .. import clients
from ..errors import KibandaError, StorageUnavailable
from ..venue.branding import branding, branding_from_config
from . import i18n

log = logging.getLogger("kibanda")

_BRANDING = "kibanda_branding"
_ORIGIN = re.compile(r"https?://[A-Za-z0-9.\-]+(?::[0-9]{1,5})?(?=/|$)")


def app_router(app: Flask | None = None):
    """The app's router gateway (one per process, created on first use)."""
    app = app or current_app
    if "kibanda.router" not in app.extensions:
        app.extensions["kibanda.router"] = clients.router_gateway(app.config)
    return app.extensions["kibanda.router"]


def app_mpesa(app: Flask | None = None):
    """The app's M-Pesa client (one per process, created on first use)."""
    app = app or current_app
    if "kibanda.mpesa" not in app.extensions:
        app.extensions["kibanda.mpesa"] = clients.mpesa_client(app.config)
    return app.extensions["kibanda.mpesa"]


def close_clients(app: Flask) -> None:
    """Close the app's router and M-Pesa links (the next use opens new ones)."""
    for name in ("kibanda.router", "kibanda.mpesa"):
        client = app.extensions.pop(name, None)
        if client is not None:
            client.close()


def current_branding() -> dict:
    """The venue's branding for this request, read once and kept in ``g``."""
    if _BRANDING not in g:
        try:
            setattr(g, _BRANDING, branding(current_app.config))
        except DatabaseError as exc:
            # Error pages (a full disk, a broken card) must still render with the name.
            log.warning("branding: database unreadable, using configuration: %s", exc)
            return branding_from_config(current_app.config)
    return getattr(g, _BRANDING)


def forget_branding() -> None:
    """Drop this request's branding after the owner changed it."""
    g.pop(_BRANDING, None)


def csp_nonce() -> str:
    """This response's nonce: the admin pages' own <script> and <style> elements carry it."""
    if "csp_nonce" not in g:
        g.csp_nonce = secrets.token_urlsafe(16)
    return g.csp_nonce


def admin_policy(nonce: str, portal_url: str = "") -> str:
    """The admin pages' Content-Security-Policy: their own files and nonce-marked elements.

    Images may also come from PORTAL_URL (a configured logo), as the owner may reach the
    admin pages by another address than the phones reach the portal, and from data: URLs
    (a voucher sheet carries its QR codes and the logo inside itself, to print offline).
    """
    portal = _ORIGIN.match(portal_url or "")
    images = "'self' data:" + (f" {portal.group(0)}" if portal else "")
    return (f"default-src 'self'; script-src 'self' 'nonce-{nonce}'; "
            f"style-src 'self' 'nonce-{nonce}'; img-src {images}; object-src 'none'; "
            f"base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


def _security_headers(response):
    # No page of the portal is ever shown inside another site's frame (clickjacking).
    response.headers["X-Frame-Options"] = "DENY"
    if request.path == "/admin" or request.path.startswith("/admin/"):
        response.headers["Content-Security-Policy"] = admin_policy(
            csp_nonce(), str(current_app.config.get("PORTAL_URL") or ""))
    return response


class RowIdConverter(IntegerConverter):
    """``<int:...>`` in every route: 1 to 18 digits, so a hostile id is a plain 404.

    Python's int() refuses more than 4,300 digits and SQLite's integers are 64-bit: a
    longer id never reaches either.
    """

    regex = r"[0-9]{1,18}"


def register(app: Flask) -> None:
    """Register every blueprint, the template helpers and the domain error handlers."""
    from . import admin, c2b, callback, captive, customer, health, sms, topup
    from . import files  # noqa: F401 - adds the logo and hotspot-file routes to customer.bp

    # Before the blueprints: their rules take the converter when they are registered.
    app.url_map.converters["int"] = RowIdConverter
    i18n.init_app(app)
    # Every page that names the venue (customer, admin, error) asks this, once per request.
    app.add_template_global(current_branding, "site_branding")
    app.add_template_global(csp_nonce, "csp_nonce")
    app.after_request(_security_headers)
    for blueprint in (health.bp, admin.bp, customer.bp, topup.bp, callback.bp, captive.bp,
                      c2b.bp, sms.bp):
        app.register_blueprint(blueprint)

    @app.errorhandler(KibandaError)
    def _domain_error(exc: KibandaError):
        lang = i18n.current_language()
        if request.path.endswith(".json") or request.accept_mimetypes.best == "application/json":
            return jsonify(error=exc.message_for(lang)), exc.status
        return render_template("error.html", message=exc.message_for(lang)), exc.status

    @app.errorhandler(404)
    def _page_not_found(exc):
        # Unknown addresses get the venue's own page in the reader's language: the
        # customer's look for customer paths, the owner's look under /admin.
        message = i18n.gettext("This page does not exist.")
        if request.path.endswith(".json") or request.accept_mimetypes.best == "application/json":
            return jsonify(error=message), 404
        if request.path == "/admin" or request.path.startswith("/admin/"):
            return render_template("admin/not_found.html", message=message), 404
        return customer.page_not_found(message)

    @app.errorhandler(DatabaseError)
    def _storage_error(exc: DatabaseError):
        # A full disk or a locked database: the transaction rolled back, so nothing was
        # recorded, charged or granted. Say so plainly; a callback gets a non-2xx answer
        # so Safaricom sends it again later.
        log.error("database error on %s %s: %s", request.method,
                  callback.redact_secret(request.path), exc)
        return _domain_error(StorageUnavailable(f"database error: {exc}"))


__all__ = ["register", "app_router", "app_mpesa", "close_clients", "current_branding"]
