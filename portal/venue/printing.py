"""Printing vouchers: card sheets (A4, 58 mm and 80 mm thermal rolls), QR codes, CSV.

The sheet is a standalone HTML page (no Flask needed, so ``kibanda vouchers create
--print`` writes the same file the admin page shows). QR codes are inline SVG, so a
sheet prints offline and never fetches an image.
"""
from __future__ import annotations

import csv
import io
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import urlencode

import qrcode
import qrcode.image.svg
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from ..i18n import translate
from ..models import Package, Voucher, VoucherBatch
from ..timeutil import format_local
from .packages import format_size
from .wording import duration_words

LAYOUTS = ("a4", "58mm", "80mm")
_TEMPLATES = Path(__file__).parent / "templates"


class CompactSvgPathImage(qrcode.image.svg.SvgPathImage):
    """SvgPathImage with each row's run of dark modules drawn as one rectangle.

    The stock image writes one square per module (about 11 kB per code); a sheet of
    5,000 cards would be 55 MB. Runs cut that to about a third.
    """

    def process(self):
        """Build the single path from the module matrix, merging horizontal runs."""
        parts = []
        border = self.border
        for row, line in enumerate(self.modules):
            col = 0
            while col < len(line):
                if not line[col]:
                    col += 1
                    continue
                start = col
                while col < len(line) and line[col]:
                    col += 1
                parts.append(f"M{start + border},{row + border}h{col - start}v1h-{col - start}z")
        self.path = ET.Element(ET.QName("path"), d="".join(parts), **self.QR_PATH_STYLE)
        self._subpaths = []
        self._img.append(self.path)


def login_url(dns_name: str, code: str) -> str:
    """The router's login URL that signs a phone in with ``code`` (what the QR encodes)."""
    return f"http://{dns_name}/login?" + urlencode({"username": code, "password": code})


def qr_svg(text: str) -> Markup:
    """An inline SVG QR code for ``text``, sized by CSS (class ``qr``)."""
    qr = qrcode.QRCode(border=2, box_size=10, error_correction=qrcode.constants.ERROR_CORRECT_M,
                       image_factory=CompactSvgPathImage)
    qr.add_data(text)
    qr.make(fit=True)
    image = qr.make_image()
    svg = image.get_image()
    for attribute in ("width", "height"):
        svg.attrib.pop(attribute, None)
    svg.set("class", "qr")
    svg.set("shape-rendering", "crispEdges")
    svg.set("role", "img")
    svg.set("aria-label", "QR")
    return Markup(ET.tostring(svg, encoding="unicode").replace("svg:", "").replace(
        'xmlns:svg="', 'xmlns="'))


def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(str(_TEMPLATES)),
                      autoescape=select_autoescape(["html"]))
    return env


def render_sheet(batch: VoucherBatch, vouchers: list[Voucher], *, layout: str = "a4",
                 venue: str, dns_name: str, lang: str = "en", now=None, nonce: str = "",
                 back_url: str = "") -> str:
    """The printable HTML page for ``vouchers`` of ``batch`` in one of LAYOUTS.

    ``nonce`` marks the page's own <style> and <script> for the admin pages' policy;
    ``back_url`` (the admin page) adds a Back link beside Print (never printed).
    """
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    package: Package = batch.package
    cards = [{"code": v.code, "qr": qr_svg(login_url(dns_name, v.code)),
              "state": v.state} for v in vouchers]
    template = _environment().get_template("print_sheet.html")
    return template.render(
        t=lambda text, **values: translate(text, lang, **values), lang=lang,
        layout=layout, batch=batch, cards=cards, venue=venue,
        package_name=package.name(lang), price=package.price,
        validity=duration_words(package.validity_seconds, lang),
        data_cap=format_size(package.data_cap_bytes), dns_name=dns_name,
        made=format_local(batch.created_at), nonce=nonce, back_url=back_url)


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
