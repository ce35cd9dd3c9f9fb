"""Admin pages: the sales dashboard, search, the router (health, sessions), grants."""
from __future__ import annotations

import secrets

from flask import abort, current_app, flash, g, redirect, render_template, request, url_for

from ...errors import KibandaError, RouterError
from ...i18n import format_datetime, format_time
from ...ledger import grants
from ... import upstream
from ...models import Grant, Package, parse_id
from ...timeutil import format_local, utcnow
from ...venue import heartbeat, reports
from .. import app_router
from ..i18n import current_language, gettext as _
from . import (
    OWNER, audit, bp, client_address, confirm_page, confirmed, flash_error, login_required,
)


def router_status() -> dict:
    """Router health and active sessions; ``reachable`` False (with the error) when down.

    Never raises for a router problem: the rest of the page must still work.
    """
    gateway = app_router()
    try:
        health = gateway.health()
        sessions = gateway.active_sessions()
    except RouterError as exc:
        return {"reachable": False, "error": exc.operator_message, "health": {},
                "sessions": []}
    total = int(health.get("total_memory") or 0)
    free = int(health.get("free_memory") or 0)
    health["memory_used_percent"] = round(100 * (total - free) / total) if total else None
    return {"reachable": True, "error": None, "health": health,
            "sessions": sorted(sessions, key=lambda s: str(s.get("user", "")))}


# Endpoint "dashboard": the function cannot be named so, it would hide the module.
@bp.get("/dashboard", endpoint="dashboard")
@login_required(OWNER)
def dashboard_page():
    """Money today / this week / this month, the chart, packages, latest purchases, router."""
    now = utcnow()
    days = request.args.get("days", 14, type=int)
    days = days if days in reports.CHART_DAYS else 14
    bars = reports.daily_takings(now, days)
    month_start, month_end = reports.period_bounds(now)["month"]
    lang = current_language()
    chart = reports.chart_svg(bars, mpesa_label=_("M-Pesa"), voucher_label=_("Vouchers"),
                              title=_("Money per day, last {days} days", days=days), lang=lang)
    return render_template(
        "admin/dashboard.html", money=reports.takings_by_period(now), chart=chart,
        days=days, chart_total=sum(b.total for b in bars),
        by_package=reports.sales_by_package(month_start, month_end, lang),
        purchases=reports.latest_purchases(), router=router_status(),
        packages=Package.on_sale(), agent=agent_notice(now),
        sync=upstream.sync_status(current_app.config))


def agent_notice(now) -> dict | None:
    """What the dashboard says when the agent stopped (None while it is alive)."""
    state = heartbeat.agent_state(now, heartbeat.interval_seconds(current_app.config))
    if not state.stale:
        return None
    if state.last_at is None:
        return {"since": None}
    same_day = format_local(state.last_at, "%Y%m%d") == format_local(now, "%Y%m%d")
    lang = current_language()
    return {"since": format_time(state.last_at, lang) if same_day
            else format_datetime(state.last_at, lang)}


@bp.get("/search")
@login_required(OWNER)
def search():
    """Find a customer's purchases, vouchers and access codes by phone, receipt or code."""
    query = request.args.get("q", "")
    results = reports.search(query)
    return render_template("admin/search.html", results=results, query=query)


@bp.get("/router")
@login_required()
def router():
    """Router health and the devices online now, with a kick button."""
    return render_template("admin/router.html", router=router_status())


def _kick_back() -> str:
    back = request.form.get("back", "")
    return (back if back.startswith("/admin") and not back.startswith("//")
            else url_for("admin.router"))


def session_label(row: dict) -> str:
    """How a session is named to this user: its code for the owner; a technician sees no
    codes (a code is as good as cash), only the device."""
    if g.admin.role == OWNER:
        return str(row.get("user", ""))
    return str(row.get("mac-address") or row.get("address") or "")


@bp.post("/sessions/<path:active_id>/kick")
@login_required()
def kick(active_id: str):
    """Log one device out of the hotspot (after a confirmation page)."""
    back = _kick_back()
    if not confirmed():
        row = next((s for s in router_status()["sessions"] if s.get(".id") == active_id), None)
        if row is None:
            flash(_("That device is not online any more."), "ok")
            return redirect(back)
        details = [(_("Address"), row.get("address", "")),
                   (_("Device"), row.get("mac-address", "")),
                   (_("Online for"), row.get("uptime", ""))]
        if g.admin.role == OWNER:
            details.insert(0, (_("Code / user"), row.get("user", "")))
        return confirm_page(
            title=_("Log a device out"),
            question=_("Log this device out of the WiFi? Its time is not lost: it can connect again with its code."),
            confirm_label=_("Yes, log it out"), cancel_url=back, details=details,
            extra={"back": back, "user": session_label(row)})
    user = request.form.get("user", "")[:60]
    try:
        app_router().kick(active_id)
    except RouterError as exc:
        flash_error(exc)
    else:
        audit("session.kick", f"{user} ({active_id})", user=user or active_id)
        flash(_("{user} was logged out.", user=user or active_id), "ok")
    return redirect(back)


@bp.route("/grant", methods=["GET", "POST"])
@login_required(OWNER)
def grant():
    """Give a customer free access (compensation): the form, a confirmation page, then the
    code on a page of its own (so reloading or going back never gives it twice)."""
    form = {"package": request.form.get("package", ""), "note": request.form.get("note", "")}
    if request.method == "POST":
        # Only a row id reaches the ledger's query (SQLite integers are 64-bit).
        package_id = parse_id(form["package"])
        package_id = package_id if package_id is not None else ""
        try:
            if not confirmed():
                package, note = grants.check_manual_grant(package_id, form["note"])
                return confirm_page(
                    title=_("Free access"),
                    question=_("Give this free access? The code works at once and is written in the activity log."),
                    confirm_label=_("Yes, give access"), cancel_url=url_for("admin.grant"),
                    danger=False, keep=("package", "note"),
                    details=[(_("Package"), package.name(current_language())),
                             (_("Why"), note)],
                    extra={"request_key": secrets.token_urlsafe(16)})
            created = grants.manual_grant(package_id, form["note"], app_router(), utcnow(),
                                          actor=g.admin.username, address=client_address(),
                                          request_key=request.form.get("request_key", ""))
        except KibandaError as exc:
            flash_error(exc)
            return render_template("admin/grant.html", packages=Package.on_sale(), form=form,
                                   created=None, Grant=Grant), 400
        return redirect(url_for("admin.grant_given", grant_id=created.id), 303)
    return render_template("admin/grant.html", packages=Package.on_sale(), form=form,
                           created=None, Grant=Grant)


@bp.get("/grant/<int:grant_id>")
@login_required(OWNER)
def grant_given(grant_id: int):
    """A free access just given: the code to hand over, and an empty form for the next."""
    created = Grant.get_or_none((Grant.id == grant_id) & (Grant.source == Grant.MANUAL))
    if created is None:
        abort(404)
    return render_template("admin/grant.html", packages=Package.on_sale(),
                           form={"package": "", "note": ""}, created=created, Grant=Grant)
