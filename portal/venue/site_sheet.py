"""The one-page site sheet ``kibanda provision`` leaves for the owner: the site, its WiFi,
the admin address with a QR code, and whether the router could run Kibanda itself.
"""
from __future__ import annotations

from html import escape

from ..i18n import translate
from . import qr as qr_code

_LABELS = {
    "t_sheet": "Kibanda WiFi site sheet", "t_ssid": "WiFi name (SSID)",
    "t_customer": "Customer page", "t_owner": "Owner's page",
    "t_scan": "Scan to open the owner's page",
    "t_password": "The owner's password was given once by kibanda init; it is not on this "
                  "sheet. Keep this sheet with the router.",
}


def _both(text: str) -> str:
    """English, then the Swahili in italics: the sheet is for the owner and the technician."""
    swahili = translate(text, "sw")
    return escape(text) + (f" / <i>{escape(swahili)}</i>" if swahili != text else "")

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{site} - site sheet</title>
<style>
body{{font:16px/1.4 sans-serif;margin:2em;max-width:40em}}
h1{{margin:0 0 .2em}} table{{border-collapse:collapse;margin:1em 0}}
td{{padding:.3em 1em .3em 0;vertical-align:top}} td:first-child{{font-weight:bold}}
.qr{{width:45mm;height:45mm}} small{{color:#555}}
</style></head><body>
<h1>{site}</h1>
<p>{t_sheet}</p>
<table>
<tr><td>{t_ssid}</td><td>{ssid}</td></tr>
<tr><td>{t_customer}</td><td>{portal}</td></tr>
<tr><td>{t_owner}</td><td>{admin}</td></tr>
<tr><td>Hotspot</td><td>{network}, router {router_address}, DNS name {dns}</td></tr>
<tr><td>Router</td><td>{board}, RouterOS {version}</td></tr>
<tr><td>Kibanda inside the router?</td><td>{verdict}</td></tr>
</table>
<p>{t_scan}:</p>
{qr}
<p><small>{t_password}</small></p>
</body></html>
"""


def admin_url(portal_url: str) -> str:
    """Where the owner signs in."""
    return f"{portal_url.rstrip('/')}/admin/"


def _qr_image(text: str) -> str:
    # The sheets' QR encoder (venue/qr.py), drawn crisp at any size.
    return (f'<img class="qr" alt="QR" style="image-rendering:pixelated" '
            f'src="{qr_code.data_url(text)}">')


def render(spec, facts, verdict: str) -> str:
    """The sheet as one HTML page (inline QR: nothing loaded from the internet)."""
    admin = admin_url(spec.portal_url)
    return _PAGE.format(
        site=escape(spec.site_name), ssid=escape(spec.ssid), portal=escape(spec.portal_url),
        admin=escape(admin), network=escape(spec.network),
        router_address=escape(spec.hotspot_address), dns=escape(spec.dns_name),
        board=escape(facts.board or "?"), version=escape(facts.version or "?"),
        verdict=escape(verdict), qr=_qr_image(admin),
        **{key: _both(text) for key, text in _LABELS.items()})


def summary(spec, verdict: str) -> list[str]:
    """The sheet's lines for the terminal."""
    return [f"site: {spec.site_name}", f"WiFi name (SSID): {spec.ssid} (set it on the router's WiFi)",
            f"customer page: {spec.portal_url}/", f"owner's page: {admin_url(spec.portal_url)}",
            f"container on this router: {verdict}"]
