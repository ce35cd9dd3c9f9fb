"""Admin pages: the venue's branding (name, colour, help phone, logo), owners only."""
from __future__ import annotations

from flask import flash, g, redirect, render_template, request, session, url_for

from flask import current_app

from ...errors import ValidationError
from ...i18n import LANGUAGES
from ...models import Package
from ...venue import branding
from ...venue.trial import save_trial, trial_settings
from .. import current_branding, forget_branding
from ..i18n import current_language
from ..i18n import gettext as _
from . import OWNER, bp, client_address, login_required

FIELDS = ("name", "color", "support_phone", "ssid")


def _page(values: dict, error: ValidationError | None = None, trial: dict | None = None,
          trial_error: ValidationError | None = None):
    site = current_branding()
    lang = current_language()
    return render_template(
        "admin/branding.html", values=values, site=site,
        error=error.message_for(lang) if error else None,
        error_field=error.field if error else None,
        trial=trial or trial_settings(), trial_packages=list(Package.on_sale()),
        trial_error=trial_error.message_for(lang) if trial_error else None), \
        200 if error is None and trial_error is None else 400


def _saved_values() -> dict:
    site = current_branding()
    return {"name": site["name"], "color": site["color"],
            "support_phone": site["support_phone"], "ssid": site["ssid"]}


@bp.route("/branding", methods=["GET", "POST"])
@login_required(OWNER)
def branding_page():
    """The venue's name, colour, help phone and logo, with a preview of the customer header."""
    if request.method == "GET":
        return _page(_saved_values())
    values = {name: request.form.get(name, "") for name in FIELDS}
    upload = request.files.get("logo")
    logo = upload.read(branding.MAX_UPLOAD_BYTES + 1) if upload and upload.filename else b""
    try:
        # Check (and shrink) the logo before saving anything: a refused file changes nothing.
        if logo:
            logo = branding.prepare_logo(logo)
        branding.save_branding(g.admin.username, client_address(), **values)
        if logo:
            branding.save_logo(g.admin.username, client_address(), logo,
                               instance=current_app.instance_path)
        forget_branding()
    except ValidationError as exc:
        return _page(values, exc)
    flash(_("Saved. Customers see the new look on their next page."), "ok")
    return redirect(url_for("admin.branding_page"))


@bp.post("/trial")
@login_required(OWNER)
def trial_setting():
    """Turn the free trial on (minutes, the package whose speed it uses) or off."""
    minutes = request.form.get("minutes", "")[:10]
    package_id = request.form.get("package", "")[:20]
    try:
        save_trial(g.admin.username, client_address(), minutes=minutes, package_id=package_id)
    except ValidationError as exc:
        return _page(_saved_values(), trial={"minutes": minutes, "package_id": package_id},
                     trial_error=exc)
    flash(_("Saved. The free trial is on.") if trial_settings()["minutes"]
          else _("Saved. The free trial is off."), "ok")
    return redirect(url_for("admin.branding_page"))


@bp.post("/branding/logo/remove")
@login_required(OWNER)
def branding_logo_remove():
    """Stop showing the uploaded logo."""
    branding.remove_logo(g.admin.username, client_address(), instance=current_app.instance_path)
    forget_branding()
    flash(_("The logo is removed."), "ok")
    return redirect(url_for("admin.branding_page"))


@bp.errorhandler(413)
def _too_big(_exc):
    """An upload past the app's request limit: say so in words, not a bare 413."""
    # Reading the form again (as choosing the language does) would raise once more.
    kept = session.get("lang")
    g.lang = kept if kept in LANGUAGES else (request.accept_languages.best_match(LANGUAGES)
                                             or "en")
    message = _("The file is too big: at most {mb} MB.",
                mb=branding.MAX_UPLOAD_BYTES // (1024 * 1024))
    return render_template("error.html", message=message), 413
