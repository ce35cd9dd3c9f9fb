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
from ...phone import display_phone
from ...venue.branding import MAX_UPLOAD_BYTES
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
    if request.endpoint == "admin.branding_page":
        # A logo straight off a phone's camera is a few MB: it is resized, not refused.
        request.max_content_length = MAX_UPLOAD_BYTES + 64 * 1024  # and the form's fields
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
    if user is None or user.disabled or session.get("admin_sv") != user.session_version:
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
    return {"csrf_token": csrf_token, "admin": g.get("admin"), "OWNER": OWNER,
            "phone": _phone_shown}


def _phone_shown(phone: str) -> str:
    # The owner reads numbers as Kenyans write them: 0712 345 678, not 254712345678.
    return display_phone(phone, "spaced")


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


def audit(action: str, detail: str = "", **values) -> None:
    """Record an admin action by the signed-in user (``values``: see venue/activity.py)."""
    AuditLog.write(g.admin.username if g.get("admin") else "-", action, detail,
                   client_address(), **values)


def flash_error(exc: KibandaError) -> None:
    """Show a domain error to the admin in their language."""
    flash(exc.message_for(current_language()), "error")


def confirmed() -> bool:
    """Is this POST the second step (the confirmation page's button)?

    Destructive actions (void, kick, free access, account changes) take two steps, and
    both work without JavaScript: the first POST only shows what will happen.
    """
    return request.form.get("confirmed") == "yes"


def confirm_page(*, title: str, question: str, confirm_label: str, cancel_url: str,
                 details: list[tuple[str, str]] = (), keep: tuple[str, ...] = (),
                 extra: dict | None = None, danger: bool = True):
    """The confirmation step: what will happen, a button that does it, and a way back.

    ``keep`` names form fields sent on to the second step; ``extra`` adds more.
    """
    fields = {name: request.form.get(name, "") for name in keep}
    fields.update(extra or {})
    return render_template("admin/confirm.html", title=title, question=question,
                           confirm_label=confirm_label, cancel_url=cancel_url,
                           details=list(details), fields=fields, danger=danger,
                           action=request.path)


def safe_next(target: str | None) -> str | None:
    """``target`` when it is a path inside the admin area, else None."""
    # Only paths inside the admin area: never an open redirect to another site.
    if target and target.startswith("/admin") and not target.startswith("//"):
        return target
    return None


# The pages register themselves on ``bp``.
from . import auth, branding, dashboard, menu_payments, packages, sms, vouchers  # noqa: E402,F401
