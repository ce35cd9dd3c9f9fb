"""The operator's pages: sign-in, every site at a glance, each site's sales and CSV.

The same habits as the site's admin pages: a CSRF token on every form, the session
cookie HttpOnly, SameSite=Lax (Secure unless ``KIBANDA_SESSION_COOKIE_SECURE=false`` for
a try-out on http://localhost), a strict Content-Security-Policy, no script at all.
"""
from __future__ import annotations

import csv
import hmac
import io
import secrets
from functools import wraps

from flask import (Blueprint, Response, abort, g, redirect, render_template, request,
                   session, url_for)

from portal.timeutil import format_local, utcnow

from . import operators, reports
from .errors import HubError
from .ingest import valid_slug
from .models import HubSite, Operator

bp = Blueprint("operator", __name__)
SALES_PAGE = 200
POLICY = ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
          "frame-ancestors 'none'; base-uri 'none'")


def csrf_token() -> str:
    """This session's CSRF token (made on first use)."""
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    return session["csrf"]


@bp.before_request
def _check_csrf():
    if request.method != "POST":
        return None
    sent, expected = request.form.get("csrf_token", ""), session.get("csrf", "")
    if not (sent and expected and hmac.compare_digest(sent.encode(), expected.encode())):
        return render_template("message.html", message="This form has expired. Reload the "
                               "page and try again."), 400
    return None


@bp.before_request
def _load_operator():
    g.operator = None
    operator_id = session.get("operator_id")
    if operator_id is not None:
        operator = Operator.get_or_none(Operator.id == operator_id)
        if operator is not None and session.get("operator_sv") == operator.session_version:
            g.operator = operator
        else:
            session.pop("operator_id", None)


def signed_in(view):
    """Send a visitor who is not signed in to the sign-in page."""
    @wraps(view)
    def wrapper(*args, **kwargs):
        if g.operator is None:
            return redirect(url_for("operator.login"))
        return view(*args, **kwargs)
    return wrapper


@bp.app_context_processor
def _template_helpers():
    return {"csrf_token": csrf_token, "local": format_local, "operator": g.get("operator")}


@bp.route("/login", methods=["GET", "POST"])
def login():
    """Sign in with the email and password ``kibanda hub operator add`` printed."""
    error, status = None, 200
    if request.method == "POST":
        try:
            operator = operators.authenticate(request.form.get("email", ""),
                                              request.form.get("password", ""),
                                              request.remote_addr or "", utcnow())
        except HubError as exc:
            error, status = exc.message, exc.status
        else:
            session.clear()
            session["operator_id"] = operator.id
            session["operator_sv"] = operator.session_version
            return redirect(url_for("operator.sites"))
    return render_template("login.html", error=error), status


@bp.post("/logout")
@signed_in
def logout():
    """Sign out everywhere this operator is signed in."""
    operators.end_sessions(g.operator.id)
    session.clear()
    return redirect(url_for("operator.login"))


@bp.get("/")
@signed_in
def sites():
    """Every site: last seen, backlog, router, money today and this month."""
    now = utcnow()
    rows = reports.site_overview(now)
    return render_template("sites.html", rows=rows, now=now,
                           total_today=sum(r.money_today for r in rows),
                           total_month=sum(r.money_month for r in rows))


def _site(slug: str) -> HubSite:
    site = HubSite.get_or_none(HubSite.slug == slug) if valid_slug(slug) else None
    if site is None:
        abort(404)
    return site


@bp.get("/sites/<slug>")
@signed_in
def site_sales(slug: str):
    """One site's sales, newest first."""
    site = _site(slug)
    sales = [reports.sale_row(event) for event in reports.sales(site, SALES_PAGE)]
    return render_template("site.html", site=site, sales=sales, page=SALES_PAGE)


@bp.get("/sites/<slug>/sales.csv")
@signed_in
def site_sales_csv(slug: str):
    """Every sale of one site as CSV (times in Africa/Nairobi)."""
    site = _site(slug)

    def lines():
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["paid_at_nairobi", "amount_kes", "source", "package", "receipt",
                         "reference", "phone", "event_id"])
        for event in reports.sales(site).iterator():
            row = reports.sale_row(event)
            writer.writerow([format_local(row["paid_at"], "%Y-%m-%d %H:%M:%S"), row["amount"],
                             row["source"], row["package"], row["receipt"], row["reference"],
                             row["phone"], row["event_id"]])
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
        yield buffer.getvalue()

    filename = f"{site.slug}-sales.csv"
    return Response(lines(), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def register(app) -> None:
    """Add the operator's pages and their security headers to ``app``."""
    app.register_blueprint(bp)

    @app.after_request
    def _headers(response):
        if not request.path.startswith(("/v1/", "/relay/")):
            response.headers["Content-Security-Policy"] = POLICY
            response.headers["X-Content-Type-Options"] = "nosniff"
            response.headers["Referrer-Policy"] = "same-origin"
            response.headers["Cache-Control"] = "no-store"
        return response
