"""Kibanda's hub: the operator's upstream for many sites.

Enrollment (one-time tokens), signed ingest of each site's outbox (stored once per event
id), the relay of M-Pesa messages for sites behind NAT, and the operator's pages. SQLite
by default, PostgreSQL for many sites; several processes on one PostgreSQL share nothing
else. Never imports ``portal.web``, ``portal.cli``, ``portal.sim`` or ``agent``.
"""
from __future__ import annotations

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException

from .config import ensure_hub_instance, hub_instance_path, load_hub_settings
from .errors import HubError
from .models import create_schema, db, init_db

#: The contract's largest body (a batch of 500 events is far below it).
MAX_BODY = 5 * 1024 * 1024


def create_app(test_config: dict | None = None, instance: str | None = None) -> Flask:
    """Build the hub app from its instance folder and settings."""
    from . import api, pages

    path = hub_instance_path(instance or (test_config or {}).get("HUB_INSTANCE"))
    ensure_hub_instance(path)
    app = Flask(__name__, instance_path=str(path), template_folder="templates")
    app.config.update(load_hub_settings(path, test_config))
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    app.config["SESSION_COOKIE_NAME"] = "kibanda_hub_session"
    init_db(str(app.config["HUB_DATABASE_URL"] or ""), str(path))
    create_schema()

    @app.before_request
    def _connect():
        db.connect(reuse_if_open=True)

    @app.teardown_request
    def _close(_exc):
        if not db.is_closed() and not app.config.get("HUB_KEEP_OPEN"):
            db.close()

    @app.errorhandler(HubError)
    def _hub_error(exc: HubError):
        return jsonify(error=exc.message), exc.status

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        if request.path.startswith(("/v1/", "/relay/")):
            return jsonify(error=exc.description or exc.name), exc.code
        return exc

    app.register_blueprint(api.bp)
    pages.register(app)
    return app


__all__ = ["create_app"]
