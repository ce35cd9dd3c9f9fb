"""Admin pages: the sales dashboard, search, the router (health, sessions), grants."""
from __future__ import annotations

from flask import current_app, flash, g, redirect, render_template, request, url_for

from ...errors import KibandaError, RouterError
from ...ledger import grants
from ... import upstream
from ...models import Grant, Package, parse_id
from ...timeutil import utcnow
from ...venue import reports
from .. import app_router
from ..i18n import gettext as _
from . import OWNER, audit, bp, client_address, flash_error, login_required


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
    chart = reports.chart_svg(bars, mpesa_label=_("M-Pesa"), voucher_label=_("Vouchers"),
                                title=_("Money per day, last {days} days", days=days))
    return render_template(
        "admin/dashboard.html", money=reports.takings_by_period(now), chart=chart,
        days=days, chart_total=sum(b.total for b in bars),
        by_package=reports.sales_by_package(month_start, month_end),
        purchases=reports.latest_purchases(), router=router_status(),
        packages=Package.on_sale(), sync=upstream.sync_status(current_app.config))


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


@bp.post("/sessions/<path:active_id>/kick")
@login_required()
def kick(active_id: str):
    """Log one device out of the hotspot."""
    user = request.form.get("user", "")
    try:
        app_router().kick(active_id)
    except RouterError as exc:
        flash_error(exc)
    else:
        audit("session.kick", f"{user} ({active_id})")
        flash(_("{user} was logged out.", user=user or active_id), "ok")
    back = request.form.get("back", "")
    return redirect(back if back.startswith("/admin") and not back.startswith("//")
                    else url_for("admin.router"))


@bp.route("/grant", methods=["GET", "POST"])
@login_required(OWNER)
def grant():
    """Give a customer free access (compensation); shows the access code to hand over."""
    error, created = None, None
    form = {"package": request.form.get("package", ""), "note": request.form.get("note", "")}
    if request.method == "POST":
        try:
            # Only a row id reaches the ledger's query (SQLite integers are 64-bit).
            package_id = parse_id(form["package"])
            created = grants.manual_grant(package_id if package_id is not None else "",
                                          form["note"], app_router(), utcnow(),
                                          actor=g.admin.username, address=client_address())
        except KibandaError as exc:
            error = exc
            flash_error(exc)
    return render_template("admin/grant.html", packages=Package.on_sale(), form=form,
                           created=created, Grant=Grant), 200 if error is None else 400
