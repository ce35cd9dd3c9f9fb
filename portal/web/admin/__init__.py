"""The owner's and technician's pages under ``/admin``: the blueprint and its plumbing.

Owners see everything. Technicians set up and look after the site (packages, router
health, sessions) but see no money: no sales, purchases, vouchers, grants or audit log.
Here: CSRF, the signed-in user, roles, audit, flashing errors. The pages themselves live
in ``auth``, ``packages``, ``vouchers``, ``dashboard`` and ``branding``.
"""
from __future__ import annotations

import hmac
import secrets
from functools import wraps

from flask import (Blueprint, flash, g, redirect, render_template, request, session,
                   url_for)

from ...errors import KibandaError
from ...models import AdminUser, AuditLog
from ...timeutil import format_local
from ..i18n import current_language, gettext as _

bp = Blueprint("admin", __name__, url_prefix="/admin")

OWNER, TECHNICIAN = AdminUser.OWNER, AdminUser.TECHNICIAN
AUDIT_PAGE = 100


# --- request plumbing ----------------------------------------------------------------

def client_address() -> str:
    """The address the request came from (the appliance is reached directly on the LAN)."""
    return request.remote_addr or ""


def csrf_token() -> str:
    """This session's CSRF token (made on first use)."""
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    return session["csrf"]


@bp.before_request
def _check_csrf():
    """Refuse any POST without this session's token, before anything changes."""
    if request.method != "POST":
        return None
    sent = request.form.get("csrf_token", "")
    expected = session.get("csrf", "")
    if not (sent and expected and hmac.compare_digest(sent.encode(), expected.encode())):
        message = _("This form has expired. Go back, reload the page and try again.")
        return render_template("error.html", message=message), 400
    return None


@bp.before_request
def _load_user():
    g.admin = session_user()


def session_user() -> AdminUser | None:
    """The admin user this session is signed in as, or None (an ended session is cleared).

    The session holds the user's session version from when it signed in; signing out and
    changing the password bump the version, so a copy of an older cookie opens nothing.
    """
    user_id = session.get("admin_id")
    if user_id is None:
        return None
    user = AdminUser.get_or_none(AdminUser.id == user_id)
    if user is None or session.get("admin_sv") != user.session_version:
        session.pop("admin_id", None)
        session.pop("admin_sv", None)
        return None
    return user


def start_session(user: AdminUser) -> None:
    """Sign this browser in as ``user`` (at the user's current session version)."""
    session["admin_id"] = user.id
    session["admin_sv"] = user.session_version


@bp.context_processor
def _template_helpers():
    return {"csrf_token": csrf_token, "admin": g.get("admin"), "local": format_local,
            "OWNER": OWNER}


def login_required(role: str | None = None):
    """Require a signed-in user; ``role=OWNER`` also refuses technicians (403)."""
    def decorator(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            if g.get("admin") is None:
                return redirect(url_for("admin.login", next=request.full_path))
            if role == OWNER and g.admin.role != OWNER:
                message = _("Only the owner can see this page.")
                return render_template("error.html", message=message), 403
            return view(*args, **kwargs)
        return wrapper
    return decorator


def audit(action: str, detail: str = "") -> None:
    """Record an admin action by the signed-in user."""
    AuditLog.write(g.admin.username if g.get("admin") else "-", action, detail,
                   client_address())


def flash_error(exc: KibandaError) -> None:
    """Show a domain error to the admin in their language."""
    flash(exc.message_for(current_language()), "error")


def safe_next(target: str | None) -> str | None:
    """``target`` when it is a path inside the admin area, else None."""
    # Only paths inside the admin area: never an open redirect to another site.
    if target and target.startswith("/admin") and not target.startswith("//"):
        return target
    return None


# The pages register themselves on ``bp``.
from . import auth, branding, dashboard, menu_payments, packages, vouchers  # noqa: E402,F401
