"""Admin pages: payments from the M-Pesa menu (C2B) the owner must decide about, and the
devices holding the places of a grant."""
from __future__ import annotations

from flask import flash, g, redirect, render_template, request, url_for

from ...errors import KibandaError
from ...ledger import c2b, devices
from ...models import Grant, Package, parse_id
from ...timeutil import utcnow
from .. import app_router
from ..i18n import gettext as _
from . import OWNER, bp, client_address, flash_error, login_required


@bp.app_template_global("menu_payments_to_review")
def menu_payments_to_review() -> int:
    """How many payments from the menu wait for the owner (the sales page says so)."""
    return c2b.to_review().count()


@bp.get("/menu-payments")
@login_required(OWNER)
def menu_payments():
    """Payments from the menu: those in review (with the owner's options), then the latest."""
    review = [(payment, c2b.nearest_package(payment.amount)) for payment in c2b.to_review()]
    return render_template("admin/menu_payments.html", review=review, latest=c2b.recent(30),
                           packages=Package.on_sale(), unusable=c2b.unusable_messages())


@bp.post("/menu-payments/<int:payment_id>/grant")
@login_required(OWNER)
def menu_payment_grant(payment_id: int):
    """Sell a package for a payment in review (the nearest one unless another is chosen)."""
    try:
        payment = c2b.grant_nearest(payment_id, parse_id(request.form.get("package")),
                                    actor=g.admin.username, now=utcnow(),
                                    address=client_address())
    except KibandaError as exc:
        flash_error(exc)
    else:
        grant = Grant.get_or_none(Grant.purchase == payment.purchase_id)
        flash(_("{receipt}: access code {code}. Give it to the customer.",
                receipt=payment.trans_id, code=grant.username if grant else "-"), "ok")
    return redirect(url_for("admin.menu_payments"))


@bp.post("/menu-payments/<int:payment_id>/refund")
@login_required(OWNER)
def menu_payment_refund(payment_id: int):
    """Mark a payment in review as given back to the customer."""
    try:
        payment = c2b.mark_refunded(payment_id, actor=g.admin.username, now=utcnow(),
                                    address=client_address())
    except KibandaError as exc:
        flash_error(exc)
    else:
        flash(_("{receipt} is marked refunded.", receipt=payment.trans_id), "ok")
    return redirect(url_for("admin.menu_payments"))


@bp.get("/grant-devices")
@login_required(OWNER)
def grant_devices():
    """The devices holding the places of one access code (``?code=``)."""
    code = "".join(request.args.get("code", "").split())[:40]
    grant = Grant.get_or_none(Grant.username == code) if code else None
    return render_template("admin/grant_devices.html", code=code, grant=grant,
                           devices=devices.held(grant) if grant else [])


@bp.post("/grant-devices/<int:device_id>/free")
@login_required(OWNER)
def free_device(device_id: int):
    """Free one device's place (it is logged out if online)."""
    try:
        device = devices.free(device_id, actor=g.admin.username, gateway=app_router(),
                              now=utcnow(), address=client_address())
    except KibandaError as exc:
        flash_error(exc)
        return redirect(url_for("admin.grant_devices"))
    flash(_("The place of {mac} is free.", mac=device.mac), "ok")
    return redirect(url_for("admin.grant_devices", code=device.grant.username))



