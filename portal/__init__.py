"""Kibanda's portal: the Flask application factory."""
from __future__ import annotations

import logging
import secrets

from flask import Flask, g, jsonify, render_template, request
from peewee import DatabaseError

from . import i18n
from .config import ensure_instance, instance_path, load_settings
from .errors import KibandaError, StorageUnavailable
from .models import create_schema, db, init_db

log = logging.getLogger("kibanda")


def create_app(test_config: dict | None = None, instance: str | None = None) -> Flask:
    """Build the portal app from the layered configuration of an instance folder."""
    path = instance_path(instance or (test_config or {}).get("INSTANCE_PATH"))
    ensure_instance(path)
    app = Flask(__name__, instance_path=str(path), instance_relative_config=True)
    settings = load_settings(path, test_config)
    app.config.update(settings)
    app.config.setdefault("SESSION_COOKIE_HTTPONLY", True)
    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    app.config["SESSION_COOKIE_NAME"] = "kibanda_session"
    # Nothing Kibanda accepts (forms, Daraja callbacks, a 200 KB logo) comes near this size.
    # Flask's defaults already hold the key (None), so setdefault would leave no limit.
    if app.config.get("MAX_CONTENT_LENGTH") is None:
        app.config["MAX_CONTENT_LENGTH"] = 256 * 1024
    if not app.config.get("SECRET_KEY"):
        # Only reachable when the key file cannot be read: never run with a fixed key.
        log.warning("no SECRET_KEY found; using a random one for this process only")
        app.config["SECRET_KEY"] = secrets.token_hex(32)

    init_db(app.config["DATABASE"])
    create_schema()

    @app.before_request
    def _connect():
        db.connect(reuse_if_open=True)

    @app.teardown_request
    def _close(_exc):
        # kibanda serve sets DATABASE_KEEP_OPEN: each gunicorn thread keeps its connection,
        # as opening one (schema parse, pragmas) costs more than a landing page's queries.
        if not db.is_closed() and not app.config.get("DATABASE_KEEP_OPEN"):
            db.close()

    i18n.init_app(app)
    from .views import register_blueprints

    register_blueprints(app)

    @app.errorhandler(KibandaError)
    def _domain_error(exc: KibandaError):
        lang = i18n.current_language()
        if request.path.endswith(".json") or request.accept_mimetypes.best == "application/json":
            return jsonify(error=exc.message_for(lang)), exc.status
        return render_template("error.html", message=exc.message_for(lang)), exc.status

    @app.errorhandler(DatabaseError)
    def _storage_error(exc: DatabaseError):
        # A full disk or a locked database: the transaction rolled back, so nothing was
        # recorded, charged or granted. Say so plainly; a callback gets a non-2xx answer
        # so Safaricom sends it again later.
        log.error("database error on %s %s: %s", request.method, request.path, exc)
        return _domain_error(StorageUnavailable(f"database error: {exc}"))

    return app


def app_router(app: Flask | None = None):
    """The app's router gateway (one per process, created on first use)."""
    from flask import current_app

    from .router import RouterGateway

    app = app or current_app
    if "kibanda.router" not in app.extensions:
        app.extensions["kibanda.router"] = RouterGateway.from_settings(app.config)
    return app.extensions["kibanda.router"]


def app_mpesa(app: Flask | None = None):
    """The app's M-Pesa client (one per process, created on first use)."""
    from flask import current_app

    from .mpesa import MpesaClient

    app = app or current_app
    if "kibanda.mpesa" not in app.extensions:
        app.extensions["kibanda.mpesa"] = MpesaClient.from_settings(app.config)
    return app.extensions["kibanda.mpesa"]


__all__ = ["create_app", "app_router", "app_mpesa", "g"]
