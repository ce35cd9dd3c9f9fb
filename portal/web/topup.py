"""Top-ups and the free trial: more data or time on the access code a customer holds,
and the site's free minutes.

The grant to top up is proven by what the browser holds: the session that was shown it
(``customer._own``: the purchase or code page put its id there), or its access code typed
here and checked like every code (``codes.held_grant``). An id in the address alone opens
nothing. The purchase itself is an ordinary STK purchase (``purchases.start_purchase``
with ``topup_of``), so it is settled once per receipt like any other.
"""
from __future__ import annotations

from flask import Blueprint, current_app, redirect, request, url_for

from ..errors import KibandaError, ValidationError
from ..ledger import codes, grants, purchases, topups, trials
from ..models import Grant, parse_id
from ..timeutil import utcnow
from ..venue.wording import duration_words
from . import app_mpesa, app_router
from .customer import _device, _landing, _own, _owns, _package_view, _render, _show_grant
from .i18n import current_language

bp = Blueprint("topup", __name__)


def _held(grant_id) -> Grant | None:
    """The grant ``grant_id`` if this browser was shown it, else None."""
    row_id = parse_id(grant_id)
    if row_id is None or not _owns("grants", row_id):
        return None
    return Grant.get_or_none(Grant.id == row_id)


def _page(grant: Grant | None, *, status: int = 200, errors=None, phone: str = "",
          code: str = ""):
    lang = current_language()
    now = utcnow()
    context = {"grant": None, "errors": errors or {}, "phone": phone, "code": code,
               "device": _device()}
    if grant is not None:
        package = grant.package
        context.update(
            grant=grant, can=topups.can_top_up(grant, now),
            kind="data" if package.data_cap_bytes else "time",
            packages=[_package_view(p, lang) for p in topups.topup_packages(grant)],
            time_left=duration_words(grants.grant_time_left(grant, now), lang),
            package_name=package.name(lang))
    return _render("customer/topup.html", status, **context)


@bp.route("/topup", methods=["GET", "POST"])
def topup_page():
    """Choose a package to add to an access code this browser holds, and pay for it."""
    lang = current_language()
    grant = _held(request.values.get("grant", "")[:20])
    if request.method == "GET":
        return _page(grant)
    device = _device()
    if grant is None:
        code = request.form.get("code", "")[:40]
        try:
            grant = codes.held_grant(code, mac=device["mac"], ip=device["ip"],
                                     gateway=app_router(), now=utcnow(),
                                     source=request.remote_addr or "")
        except KibandaError as exc:
            return _page(None, status=exc.status, errors={"code": exc.message_for(lang)},
                         code=code)
        _own("grants", grant.id)
        return redirect(url_for(".topup_page", grant=grant.id), 303)
    phone = request.form.get("phone", "")[:40]
    config = current_app.config
    try:
        purchase = purchases.start_purchase(
            request.form.get("package"), phone, mac=device["mac"], ip=device["ip"],
            link_login_only=device["link-login-only"], link_orig=device["link-orig"],
            mpesa=app_mpesa(), callback_url=purchases.callback_url(config), now=utcnow(),
            account_reference=config.get("MPESA_ACCOUNT_REFERENCE") or None,
            gateway=app_router(), source=request.remote_addr or "", topup_of=grant)
    except ValidationError as exc:
        field = exc.field if exc.field in ("phone", "package") else "form"
        return _page(grant, status=400, errors={field: exc.message_for(lang)}, phone=phone)
    except KibandaError as exc:
        return _page(grant, status=exc.status, errors={"form": exc.message_for(lang)},
                     phone=phone)
    _own("purchases", purchase.id)
    return redirect(url_for("customer.purchase_page", reference=purchase.reference), 303)


@bp.post("/trial")
def trial():
    """The site's free trial for this device and phone (once a day each)."""
    lang = current_language()
    device = _device()
    phone = request.form.get("phone", "")[:40]
    try:
        grant = trials.start_trial(phone, mac=device["mac"], ip=device["ip"],
                                   gateway=app_router(), now=utcnow(),
                                   source=request.remote_addr or "")
    except KibandaError as exc:
        return _landing(trial_phone=phone, trial_error=exc.message_for(lang), status=exc.status)
    return _show_grant(grant)
