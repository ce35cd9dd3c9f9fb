"""Admin pages: sign-in, sign-out, first-owner setup, password change, audit log, accounts."""
from __future__ import annotations

from flask import abort, flash, g, redirect, render_template, request, session, url_for

from ...errors import KibandaError, SetupClosed, ValidationError
from ...models import AdminUser, AuditLog
from ...timeutil import utcnow
from ...venue import accounts
from ...venue.activity import entry_words
from ..i18n import current_language, gettext as _

#: A million entries: far more than any site writes, and the offset stays a small number.
MAX_AUDIT_PAGE = 10_000
from . import (
    AUDIT_PAGE, OWNER, TECHNICIAN, audit, bp, client_address, confirm_page, confirmed,
    flash_error, login_required, safe_next, start_session,
)


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
            start_session(user)
            home = "admin.dashboard" if user.role == OWNER else "admin.router"
            return redirect(safe_next(request.args.get("next")) or url_for(home))
    status = 200 if error is None else 401
    return render_template("admin/login.html", error=error, username=username), status


@bp.post("/logout")
def logout():
    """Sign out: this browser, and every copy of its session cookie, everywhere."""
    if g.get("admin") is not None:
        accounts.end_sessions(g.admin.id)
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
        except SetupClosed:
            abort(404)
        except KibandaError as exc:
            error = exc.message_for(current_language())
        else:
            start_session(user)
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
            # Every other session of this user is over; this one goes on.
            start_session(AdminUser.get_by_id(g.admin.id))
            flash(_("Your password is changed."), "ok")
            return redirect(url_for("admin.index"))
    return render_template("admin/password.html")


# --- owners only: audit log and accounts ---------------------------------------------

@bp.get("/audit")
@login_required(OWNER)
def audit_log():
    """Every admin action, newest first."""
    page = max(1, request.args.get("page", 1, type=int))
    if page > MAX_AUDIT_PAGE:
        return render_template("error.html", message=_("There is no such page.")), 400
    entries = list(AuditLog.select().order_by(AuditLog.at.desc(), AuditLog.id.desc())
                   .paginate(page, AUDIT_PAGE))
    lang = current_language()
    return render_template("admin/audit.html", page=page, more=len(entries) == AUDIT_PAGE,
                           entries=[(e, *entry_words(e, lang)) for e in entries])


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


def _account(user_id: int) -> AdminUser:
    user = AdminUser.get_or_none(AdminUser.id == user_id)
    if user is None:
        abort(404)
    return user


def _ask(title: str, question: str, confirm_label: str, danger: bool = True):
    return confirm_page(title=title, question=question, confirm_label=confirm_label,
                        cancel_url=url_for("admin.users"), danger=danger)


def _change_account(change, done: str):
    """Run ``change(actor, address, now)`` for the signed-in owner, say how it went, and go
    back to the accounts."""
    try:
        change(g.admin.username, client_address(), utcnow())
    except KibandaError as exc:
        flash_error(exc)
    else:
        flash(done, "ok")
    return redirect(url_for("admin.users"), 303)


@bp.post("/users/<int:user_id>/disable")
@login_required(OWNER)
def user_disable(user_id: int):
    """Disable a technician's account (after a confirmation page); it can be enabled again."""
    user = _account(user_id)
    if not confirmed():
        return _ask(_("Disable an account"),
                    _("Disable {name}'s account? They are signed out at once and cannot sign in until you enable it again.",
                      name=user.username),
                    _("Yes, disable"))
    return _change_account(lambda *who: accounts.set_disabled(user.id, True, *who),
                           _("{name} is disabled.", name=user.username))


@bp.post("/users/<int:user_id>/enable")
@login_required(OWNER)
def user_enable(user_id: int):
    """Let a disabled technician sign in again."""
    user = _account(user_id)
    return _change_account(lambda *who: accounts.set_disabled(user.id, False, *who),
                           _("{name} can sign in again.", name=user.username))


@bp.post("/users/<int:user_id>/remove")
@login_required(OWNER)
def user_remove(user_id: int):
    """Remove a technician's account for good (after a confirmation page)."""
    user = _account(user_id)
    if not confirmed():
        return _ask(_("Remove an account"),
                    _("Remove {name}'s account for good? The activity log keeps what they did.",
                      name=user.username),
                    _("Yes, remove"))
    return _change_account(lambda *who: accounts.remove_account(user.id, *who),
                           _("{name}'s account is removed.", name=user.username))


@bp.post("/users/<int:user_id>/password")
@login_required(OWNER)
def user_reset_password(user_id: int):
    """Give a technician a new password (after a confirmation page) and show it once."""
    user = _account(user_id)
    if not confirmed():
        return _ask(_("Reset a password"),
                    _("Give {name} a new password? Their old password stops working and they are signed out.",
                      name=user.username),
                    _("Yes, make a new password"), danger=False)
    try:
        password = accounts.reset_password(user.id, g.admin.username, client_address(),
                                           utcnow())
    except KibandaError as exc:
        flash_error(exc)
        return redirect(url_for("admin.users"), 303)
    # Shown once, in this answer only: it is never stored or shown again.
    response = render_template("admin/new_password.html", user=user, password=password)
    return response, 200, {"Cache-Control": "no-store"}
