"""Admin pages: voucher batches (make, push by the agent, print, CSV, void)."""
from __future__ import annotations

from flask import (Response, current_app, flash, g, redirect, render_template, request,
                   url_for)

from ...errors import KibandaError, ValidationError
from ...models import AuditLog, Package, parse_id
from ...timeutil import format_local, utcnow
from ...venue import vouchers
from ...venue.branding import logo_data_url
from ...venue.printing import LAYOUTS, batch_csv, render_sheet
from .. import app_router, csp_nonce, current_branding
from ..i18n import current_language, gettext as _
from . import OWNER, bp, client_address, confirm_page, confirmed, flash_error, login_required

CODES_SHOWN = 300


@bp.route("/vouchers", methods=["GET", "POST"])
@login_required(OWNER)
def voucher_batches():
    """Batches with their counts, and the form to make a new one."""
    form = {"package": "", "count": "50", "alphabet": "numeric",
            "length": str(vouchers.DEFAULT_LENGTH), "prefix": ""}
    error = None
    if request.method == "POST":
        form.update({k: request.form.get(k, "") for k in form})
        try:
            package_id = parse_id(form["package"])
            package = (Package.get_or_none(Package.id == package_id)
                       if package_id is not None else None)
            if package is None:
                raise ValidationError("no package", field="package",
                                      en="Choose a package.", sw="Chagua kifurushi.")
            batch = vouchers.create_batch(package, form["count"], utcnow(), g.admin.username,
                                          alphabet=form["alphabet"], length=form["length"],
                                          prefix=form["prefix"], address=client_address())
        except KibandaError as exc:
            error = exc.message_for(current_language())
        else:
            vouchers.queue_push(batch.id, utcnow(), g.admin.username, client_address())
            flash(_("{count} vouchers made. Putting them on the router now.",
                    count=batch.count), "ok")
            return redirect(url_for("admin.voucher_batch", batch_id=batch.id))
    return render_template("admin/vouchers.html", batches=vouchers.list_batches(),
                           packages=Package.on_sale(), form=form, error=error,
                           alphabets=vouchers.ALPHABETS), 200 if error is None else 400


@bp.get("/vouchers/<int:batch_id>")
@login_required(OWNER)
def voucher_batch(batch_id: int):
    """One batch: progress of the push, states, buttons to print, resume and void."""
    batch = vouchers.get_batch(batch_id)
    pushing = vouchers.push_queued(batch)
    codes = list(vouchers.batch_codes(batch).limit(CODES_SHOWN))
    return render_template("admin/voucher_batch.html", batch=batch,
                           counts=vouchers.batch_counts(batch), codes=codes,
                           codes_shown=CODES_SHOWN, pushing=pushing, layouts=LAYOUTS)


@bp.post("/vouchers/<int:batch_id>/push")
@login_required(OWNER)
def voucher_push(batch_id: int):
    """Resume (or retry) putting a batch on the router."""
    batch = vouchers.get_batch(batch_id)
    if batch.voided_at is None and not vouchers.push_queued(batch):
        vouchers.queue_push(batch.id, utcnow(), g.admin.username, client_address())
        flash(_("Putting the vouchers on the router."), "ok")
    return redirect(url_for("admin.voucher_batch", batch_id=batch_id))


@bp.post("/vouchers/<int:batch_id>/void")
@login_required(OWNER)
def voucher_void(batch_id: int):
    """Remove the batch's unused codes from the router and void them (after a
    confirmation page: printed cards stop working)."""
    if not confirmed():
        batch = vouchers.get_batch(batch_id)
        counts = vouchers.batch_counts(batch)
        unused = counts.new + counts.on_router
        return confirm_page(
            title=_("Void this batch"),
            question=_("Void {count} unused codes of batch #{batch}? Printed cards with these codes stop working. Codes already in use keep working.",
                       count=unused, batch=batch.id),
            confirm_label=_("Yes, void {count} codes", count=unused),
            cancel_url=url_for("admin.voucher_batch", batch_id=batch.id),
            details=[(_("Package"), batch.package.name(current_language())),
                     (_("Made"), format_local(batch.created_at)),
                     (_("Used"), str(counts.used))])
    try:
        count = vouchers.void_batch(batch_id, app_router(), utcnow(), actor=g.admin.username,
                                    address=client_address())
    except KibandaError as exc:
        flash_error(exc)
    else:
        flash(_("{count} unused vouchers voided.", count=count), "ok")
    return redirect(url_for("admin.voucher_batch", batch_id=batch_id))


@bp.get("/vouchers/<int:batch_id>/print")
@login_required(OWNER)
def voucher_print(batch_id: int):
    """The printable sheet (A4, 58 mm or 80 mm roll); the same codes every time."""
    batch = vouchers.get_batch(batch_id)
    layout = request.args.get("layout", "a4")
    if layout not in LAYOUTS:
        layout = "a4"
    codes = list(vouchers.batch_codes(batch))
    AuditLog.write(g.admin.username, "vouchers.print", f"batch {batch.id} ({layout})",
                   client_address(), batch=batch.id, layout=layout)
    site = current_branding()
    html = render_sheet(batch, codes, layout=layout, venue=site["name"], ssid=site["ssid"],
                        logo=logo_data_url(site, current_app.instance_path),
                        dns_name=current_app.config["HOTSPOT_DNS_NAME"],
                        lang=current_language(), nonce=csp_nonce(),
                        back_url=url_for("admin.voucher_batch", batch_id=batch.id))
    return Response(html, mimetype="text/html")


@bp.get("/vouchers/<int:batch_id>.csv")
@login_required(OWNER)
def voucher_csv(batch_id: int):
    """The batch as CSV: code, package, price, state, created."""
    batch = vouchers.get_batch(batch_id)
    AuditLog.write(g.admin.username, "vouchers.export", f"batch {batch.id} (csv)",
                   client_address(), batch=batch.id)
    return Response(batch_csv(batch, vouchers.batch_codes(batch)), mimetype="text/csv",
                    headers={"Content-Disposition":
                             f'attachment; filename="vouchers-batch-{batch.id}.csv"'})

