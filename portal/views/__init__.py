"""Blueprints, registered by the application factory."""
from __future__ import annotations

from flask import Flask


def register_blueprints(app: Flask) -> None:
    """Register every blueprint of the portal."""
    from ..branding import current_branding

    # Every page that names the venue (customer, admin, error) asks this, once per request.
    app.add_template_global(current_branding, "site_branding")
    from . import health

    app.register_blueprint(health.bp)
    from . import admin

    app.register_blueprint(admin.bp)
    from . import customer, mpesa_callback

    app.register_blueprint(customer.bp)
    app.register_blueprint(mpesa_callback.bp)
