"""Admin pages: packages (create, edit, retire) and their router profiles."""
from __future__ import annotations

from flask import flash, g, redirect, render_template, request, url_for

from ...errors import ValidationError
from ...models import AuditLog, Package
from ...timeutil import format_duration
from ...venue import packages
from ...venue.activity import package_values
from ...venue.wording import duration_words
from .. import app_router
from ..i18n import current_language
from ..i18n import gettext as _
from . import bp, client_address, flash_error, login_required

FIELDS = ("name_en", "name_sw", "price", "validity", "rate_limit", "devices", "data_cap",
          "fair_use_rate", "sort_order", "hours", "outside")
#: The day boxes of the time window (value: weekday digit, Mon=0).
DAYS = (("0", "Mon"), ("1", "Tue"), ("2", "Wed"), ("3", "Thu"), ("4", "Fri"), ("5", "Sat"),
        ("6", "Sun"))


def _hours(package: Package) -> str:
    if package.window_start is None:
        return ""
    end = package.window_end or 0
    return (f"{package.window_start // 60:02d}:{package.window_start % 60:02d}-"
            f"{end // 60:02d}:{end % 60:02d}")


def _form_values(package: Package | None = None) -> dict:
    if request.method == "POST":
        values = {name: request.form.get(name, "") for name in FIELDS}
        values["days"] = ",".join(request.form.getlist("days")[:7])
        return values
    if package is None:
        return {"name_en": "", "name_sw": "", "price": "", "validity": "1h", "rate_limit": "",
                "devices": "1", "data_cap": "", "fair_use_rate": "", "sort_order": "0", "days": "", "hours": "",
                "outside": "refuse"}
    return {"name_en": package.name_en, "name_sw": package.name_sw, "price": package.price,
            "validity": format_duration(package.validity_seconds),
            "rate_limit": package.rate_limit, "devices": package.devices,
            "data_cap": packages.format_size(package.data_cap_bytes).replace(" ", ""),
            "fair_use_rate": package.fair_use_rate, "sort_order": package.sort_order, "days": ",".join(package.window_days),
            "hours": _hours(package), "outside": package.window_sale}


def _sync(package: Package) -> None:
    """Push the package to the router and tell the admin how it went."""
    if packages.sync_profile(package, app_router()):
        flash(_("The router has the package {name}.", name=package.name_en), "ok")
    else:
        flash(_("Saved, but the router did not take it: {error}", error=package.router_error),
              "error")


@bp.get("/packages")
@login_required()
def package_list():
    """Every package with its router state."""
    rows = Package.select().order_by(Package.active.desc(), Package.sort_order, Package.price)
    return render_template("admin/packages.html", packages=rows, describe=packages.describe,
                           duration=lambda seconds: duration_words(seconds, current_language()),
                           size=packages.format_size)


@bp.route("/packages/new", methods=["GET", "POST"])
@login_required()
def package_new():
    """Create a package and push it to the router."""
    error = None
    if request.method == "POST":
        try:
            package = packages.create_package(actor=g.admin.username, address=client_address(),
                                              **_form_values())
        except ValidationError as exc:
            error = exc
        else:
            _sync(package)
            return redirect(url_for("admin.package_list"))
    return _form(None, error)


@bp.route("/packages/<int:package_id>/edit", methods=["GET", "POST"])
@login_required()
def package_edit(package_id: int):
    """Change a package and push the change to the router."""
    package = Package.get_or_none(Package.id == package_id)
    if package is None:
        return render_template("error.html", message=_("Not found.")), 404
    error = None
    if request.method == "POST":
        try:
            package = packages.update_package(package_id, actor=g.admin.username,
                                              address=client_address(), **_form_values())
        except ValidationError as exc:
            error = exc
        else:
            _sync(package)
            return redirect(url_for("admin.package_list"))
    return _form(package, error)


def _form(package: Package | None, error: ValidationError | None):
    message = error.message_for(current_language()) if error else None
    return render_template("admin/package_form.html", package=package, days=DAYS,
                           values=_form_values(package), error=message,
                           error_field=error.field if error else None), 200 if error is None else 400


@bp.post("/packages/<int:package_id>/retire")
@login_required()
def package_retire(package_id: int):
    """Stop selling a package (its history stays)."""
    package = packages.set_package_active(package_id, False, actor=g.admin.username,
                                          address=client_address())
    flash(_("{name} is no longer sold.", name=package.name_en), "ok")
    return redirect(url_for("admin.package_list"))


@bp.post("/packages/<int:package_id>/activate")
@login_required()
def package_activate(package_id: int):
    """Sell a retired package again."""
    package = packages.set_package_active(package_id, True, actor=g.admin.username,
                                          address=client_address())
    _sync(package)
    return redirect(url_for("admin.package_list"))


@bp.post("/packages/<int:package_id>/sync")
@login_required()
def package_sync(package_id: int):
    """Try again to put a package's profile on the router."""
    package = Package.get_or_none(Package.id == package_id)
    if package is None:
        flash_error(ValidationError("no package", en="Not found.", sw="Haikupatikana."))
        return redirect(url_for("admin.package_list"))
    AuditLog.write(g.admin.username, "package.sync", packages.describe(package),
                   client_address(), **package_values(package))
    _sync(package)
    return redirect(url_for("admin.package_list"))
