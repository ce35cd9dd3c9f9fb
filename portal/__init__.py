"""Kibanda's portal: the Flask application factory.

Everything else lives in rooms by role (see ARCHITECTURE.md): ``ledger`` (the money
path), ``venue`` (what an owner manages), ``mpesa`` and ``routeros`` (the two links),
``web`` (Flask), ``cli`` (the ``kibanda`` command) and ``sim`` (the emulators).
"""
from __future__ import annotations

import logging
import secrets
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask

log = logging.getLogger("kibanda")


def create_app(test_config: dict | None = None, instance: str | None = None) -> "Flask":
    """Build the portal app from the layered configuration of an instance folder."""
    # Imported here: every process imports this package (the agent, `kibanda run`), and
    # only the portal needs Flask and the rest (each import costs memory on a router).
    from flask import Flask

    from . import web
    from .config import ensure_instance, instance_path, load_settings
    from .models import create_schema, db, init_db

    path = instance_path(instance or (test_config or {}).get("INSTANCE_PATH"))
    ensure_instance(path)
    app = Flask(__name__, instance_path=str(path), instance_relative_config=True,
                template_folder="web/templates", static_folder="web/static")
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
    from .venue.sms import record_configuration

    with db.connection_context():
        # Code without the settings at hand (a sale's receipt) learns from the database
        # whether SMS is on.
        record_configuration(app.config)

    @app.before_request
    def _connect():
        db.connect(reuse_if_open=True)

    @app.teardown_request
    def _close(_exc):
        # kibanda serve sets DATABASE_KEEP_OPEN: each gunicorn thread keeps its connection,
        # as opening one (schema parse, pragmas) costs more than a landing page's queries.
        if not db.is_closed() and not app.config.get("DATABASE_KEEP_OPEN"):
            db.close()

    web.register(app)
    return app


__all__ = ["create_app"]
