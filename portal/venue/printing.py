"""Printing vouchers: card sheets (A4, 58 mm and 80 mm thermal rolls), QR codes, CSV.

The sheet is a standalone HTML page (no Flask needed, so ``kibanda vouchers create
--print`` writes the same file the admin page shows). QR codes (``qr.py``) and the logo
are inside the page as data: URLs, so a sheet prints offline and never fetches an image.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path
from urllib.parse import urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape

from ..i18n import format_datetime, format_money, translate
from ..models import Package, Voucher, VoucherBatch
from ..timeutil import format_local
from .packages import format_size
from .qr import data_url
from .wording import duration_words

LAYOUTS = ("a4", "58mm", "80mm")
_TEMPLATES = Path(__file__).parent / "templates"


def login_url(dns_name: str, code: str) -> str:
    """The router's login URL that signs a phone in with ``code`` (what the QR encodes)."""
    return f"http://{dns_name}/login?" + urlencode({"username": code, "password": code})


def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(str(_TEMPLATES)),
                      autoescape=select_autoescape(["html"]))
    return env


def package_line(package: Package, lang: str) -> str:
    """The package as a card says it: its name, then how long it lasts unless the name
    says just that ("Saa 1", not "Saa 1 · muda Saa 1"), then its data cap."""
    name = package.name(lang)
    validity = duration_words(package.validity_seconds, lang)
    parts = [name]
    if " ".join(validity.lower().split()) != " ".join(name.lower().split()):
        valid_for = translate("valid for", lang)
        parts.append(f"{valid_for} {validity}")
    if package.data_cap_bytes:
        parts.append(format_size(package.data_cap_bytes))
    return " · ".join(parts)


def render_sheet(batch: VoucherBatch, vouchers: list[Voucher], *, layout: str = "a4",
                 venue: str, dns_name: str, lang: str = "en", now=None, nonce: str = "",
                 back_url: str = "", ssid: str = "", logo: str = "") -> str:
    """The printable HTML page for ``vouchers`` of ``batch`` in one of LAYOUTS.

    ``ssid`` is the WiFi network's name printed on each card; ``logo`` the venue's logo
    as a data: URL (``branding.logo_data_url``), drawn once in the sheet's style and
    shown on every card. Each QR code is a small PNG inside the page, so the sheet
    prints offline. ``nonce`` marks the page's own <style> and <script> for the admin
    pages' policy; ``back_url`` (the admin page) adds a Back link beside Print (never
    printed).
    """
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    package: Package = batch.package
    cards = [{"code": v.code, "qr": data_url(login_url(dns_name, v.code)),
              "state": v.state} for v in vouchers]
    template = _environment().get_template("print_sheet.html")
    return template.render(
        t=lambda text, **values: translate(text, lang, **values), lang=lang,
        layout=layout, batch=batch, cards=cards, venue=venue, ssid=ssid, logo=logo,
        package_line=package_line(package, lang), price=format_money(package.price, lang),
        dns_name=dns_name, made=format_datetime(batch.created_at, lang), nonce=nonce,
        back_url=back_url)


def batch_csv(batch: VoucherBatch, vouchers) -> str:
    """CSV of a batch: code, package, price, state, created (Nairobi time)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["code", "package", "price_kes", "state", "created"])
    package = batch.package
    name = package.name_en
    if name[:1] in ("=", "+", "-", "@"):
        name = "'" + name  # a spreadsheet would run it as a formula
    for voucher in vouchers:
        writer.writerow([voucher.code, name, package.price, voucher.state,
                         format_local(voucher.created_at, "%Y-%m-%d %H:%M")])
    return out.getvalue()
