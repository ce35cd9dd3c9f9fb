"""Admin pages, part 1: the blueprint, sign-in, setup, CSRF, roles, audit log, accounts.

Owners see everything. Technicians set up and look after the site (packages, router
health, sessions) but see no money: no sales, purchases, vouchers, grants or audit log.
The other admin pages live in ``admin_packages``, ``admin_vouchers``, ``admin_dashboard``
and ``admin_branding`` and register on the same blueprint.
"""
from __future__ import annotations

import hmac
import secrets
from functools import wraps

from flask import (Blueprint, abort, flash, g, redirect, render_template, request, session,
                   url_for)

from .. import accounts
from ..errors import KibandaError, ValidationError
from ..i18n import current_language, gettext as _
from ..models import AdminUser, AuditLog
from ..timeutil import format_local, utcnow

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
    g.admin = None
    user_id = session.get("admin_id")
    if user_id is None:
        return
    user = AdminUser.get_or_none(AdminUser.id == user_id)
    # A password change ends every other session of that user.
    if user is None or session.get("admin_pw") != _fingerprint(user):
        session.pop("admin_id", None)
        return
    g.admin = user


def _fingerprint(user: AdminUser) -> str:
    return user.password_hash[-16:]


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


def _safe_next(target: str | None) -> str | None:
    # Only paths inside the admin area: never an open redirect to another site.
    if target and target.startswith("/admin") and not target.startswith("//"):
        return target
    return None


# --- sign-in -------------------------------------------------------------------------

@bp.route("/login", methods=["GET", "POST"])
def login():
    """Sign in with username and password."""
    if not accounts.owner_exists():
        return redirect(url_for("admin.setup"))
    error = None
    username = request.form.get("username", "")
    if request.method == "POST":
        try:
            user = accounts.authenticate(username, request.form.get("password", ""),
                                         client_address(), utcnow())
        except KibandaError as exc:
            error = exc.message_for(current_language())
        else:
            keep_lang = session.get("lang")
            session.clear()
            if keep_lang:
                session["lang"] = keep_lang
            session["admin_id"] = user.id
            session["admin_pw"] = _fingerprint(user)
            home = "admin.dashboard" if user.role == OWNER else "admin.router"
            return redirect(_safe_next(request.args.get("next")) or url_for(home))
    status = 200 if error is None else 401
    return render_template("admin/login.html", error=error, username=username), status


@bp.post("/logout")
def logout():
    """Sign out."""
    if g.get("admin") is not None:
        audit("admin.logout")
    session.clear()
    flash(_("You are signed out."), "ok")
    return redirect(url_for("admin.login"))


@bp.route("/setup", methods=["GET", "POST"])
def setup():
    """Create the first owner; only while no owner exists (404 afterwards)."""
    if accounts.owner_exists():
        abort(404)
    error = None
    if request.method == "POST":
        try:
            user = accounts.setup_first_owner(request.form.get("username", ""),
                                              request.form.get("password", ""),
                                              request.form.get("confirm", ""), client_address())
        except accounts.SetupClosed:
            abort(404)
        except KibandaError as exc:
            error = exc.message_for(current_language())
        else:
            session["admin_id"] = user.id
            session["admin_pw"] = _fingerprint(user)
            flash(_("Welcome! Your owner account is ready."), "ok")
            return redirect(url_for("admin.dashboard"))
    return render_template("admin/setup.html", error=error,
                           username=request.form.get("username", "")), 200 if error is None else 400


@bp.get("/")
@login_required()
def index():
    """The home page for the user's role."""
    return redirect(url_for("admin.dashboard" if g.admin.role == OWNER else "admin.router"))


@bp.route("/password", methods=["GET", "POST"])
@login_required()
def password():
    """Change one's own password."""
    if request.method == "POST":
        try:
            accounts.change_password(g.admin.id, request.form.get("current", ""),
                                     request.form.get("new", ""), request.form.get("confirm", ""),
                                     client_address(), utcnow())
        except KibandaError as exc:
            flash_error(exc)
        else:
            session["admin_pw"] = _fingerprint(AdminUser.get_by_id(g.admin.id))
            flash(_("Your password is changed."), "ok")
            return redirect(url_for("admin.index"))
    return render_template("admin/password.html")


# --- owners only: audit log and accounts ---------------------------------------------

@bp.get("/audit")
@login_required(OWNER)
def audit_log():
    """Every admin action, newest first."""
    page = max(1, request.args.get("page", 1, type=int))
    entries = list(AuditLog.select().order_by(AuditLog.at.desc(), AuditLog.id.desc())
                   .paginate(page, AUDIT_PAGE))
    return render_template("admin/audit.html", entries=entries, page=page,
                           more=len(entries) == AUDIT_PAGE)


@bp.route("/users", methods=["GET", "POST"])
@login_required(OWNER)
def users():
    """List accounts; add a technician or another owner."""
    if request.method == "POST":
        try:
            accounts.create_admin(request.form.get("username", ""),
                                  request.form.get("password", ""),
                                  request.form.get("role", TECHNICIAN),
                                  actor=g.admin.username, address=client_address())
        except ValidationError as exc:
            flash_error(exc)
        else:
            flash(_("Account created."), "ok")
            return redirect(url_for("admin.users"))
    return render_template("admin/users.html",
                           users=AdminUser.select().order_by(AdminUser.username))


# Register the rest of the admin pages on this blueprint.
from . import admin_branding, admin_dashboard, admin_packages, admin_vouchers  # noqa: E402,F401
