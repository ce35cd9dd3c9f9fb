"""Voucher sheets in a real browser (Debian's Chromium): A4 and 58 mm, QR codes decoded."""
from __future__ import annotations

import csv
import io
import re
import subprocess
from pathlib import Path

import pytest
from system_tools import launch, require
from helpers import Browser, make_package

from portal.models import Voucher, db
from portal.timeutil import utcnow
from portal.venue.printing import login_url
from portal.venue.vouchers import create_batch

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
DNS = "wifi.mamanjeri.co.ke"
#: CSS pixels at 96 dpi: A4 is 210 mm wide, the 58 mm roll prints 48-52 mm.
WIDTHS = {"a4": 794, "58mm": 219, "80mm": 302}

pytestmark = pytest.mark.site(users=True)


@pytest.fixture
def printed(app):
    """An owner signed in, and a batch of 9 numeric codes for a 1-day package."""
    package = make_package(app, name_en="1 day", name_sw="Siku 1", price=50, validity="1d")
    with app.app_context(), db.connection_context():
        batch = create_batch(package, 9, utcnow(), "mama-njeri")
        codes = [v.code for v in Voucher.select().where(Voucher.batch == batch.id)
                 .order_by(Voucher.id)]
    owner = Browser(app)
    owner.login()
    return owner, batch.id, codes


def decode(png: Path) -> list[str]:
    """Every QR code zbarimg finds in a picture."""
    result = subprocess.run([require("zbarimg"), "--raw", "-q", str(png)], capture_output=True,
                            text=True, timeout=60, check=False)
    return [line for line in result.stdout.splitlines() if line.strip()]


@pytest.mark.parametrize("layout", ["a4", "58mm"])
def test_sheet_in_chromium_is_readable_and_its_qr_codes_log_in(printed, layout):
    from playwright.sync_api import sync_playwright

    owner, batch_id, codes = printed
    html = owner.text(f"/admin/vouchers/{batch_id}/print?layout={layout}")
    ARTIFACTS.mkdir(exist_ok=True)
    png = ARTIFACTS / f"vouchers-{layout}.png"
    with sync_playwright() as pw:
        browser = launch(pw)
        try:
            page = browser.new_page(viewport={"width": WIDTHS[layout], "height": 900},
                                    device_scale_factor=2)
            page.set_content(html)
            page.screenshot(path=str(png), full_page=True)
            cards = page.eval_on_selector_all(".card", """cards => cards.map(c => {
                const box = c.getBoundingClientRect(), code = c.querySelector('.code');
                return {right: box.right, breakInside: getComputedStyle(c).breakInside,
                        codeFits: code.scrollWidth <= code.clientWidth + 1,
                        codeRight: code.getBoundingClientRect().right,
                        font: getComputedStyle(code).fontFamily,
                        color: getComputedStyle(code).color, text: c.innerText};
            })""")
            pdf = page.pdf(prefer_css_page_size=True)
        finally:
            browser.close()
    assert len(cards) == 9
    for card, code in zip(cards, codes):
        assert card["breakInside"] == "avoid"
        assert card["right"] <= WIDTHS[layout] + 0.5, "card runs off the paper"
        assert card["codeFits"] and card["codeRight"] <= card["right"]
        assert "mono" in card["font"].lower()
        assert card["color"] == "rgb(0, 0, 0)"
        for words in ("Mama Njeri Cafe", "1 day", "KES 50", code):
            assert words in card["text"]
    assert pdf.startswith(b"%PDF")
    found = decode(png)
    assert sorted(found) == sorted(login_url(DNS, code) for code in codes)
    assert found[0].startswith(f"http://{DNS}/login?username=")
    # On paper too: the PDF chromium prints, rasterised at 300 dpi as a printer would, has
    # sharp QR codes (each is one pixel a module, scaled without smoothing).
    (ARTIFACTS / f"vouchers-{layout}.pdf").write_bytes(pdf)
    paper = ARTIFACTS / f"vouchers-{layout}-pdf-%02d.png"
    for earlier in ARTIFACTS.glob(f"vouchers-{layout}-pdf-*.png"):
        earlier.unlink()  # only this run's pages are read
    subprocess.run([require("gs"), "-q", "-dSAFER", "-dBATCH", "-dNOPAUSE", "-sDEVICE=pnggray",
                    "-r300", f"-sOutputFile={paper}", str(ARTIFACTS / f"vouchers-{layout}.pdf")],
                   check=True, timeout=120)
    printed = [line for page in sorted(ARTIFACTS.glob(f"vouchers-{layout}-pdf-*.png"))
               for line in decode(page)]
    assert sorted(printed) == sorted(login_url(DNS, code) for code in codes)


def test_reprint_gives_the_same_codes_and_csv_lists_them(printed):
    owner, batch_id, codes = printed
    first = owner.text(f"/admin/vouchers/{batch_id}/print?layout=80mm")
    again = owner.text(f"/admin/vouchers/{batch_id}/print?layout=80mm")
    # The same sheet, but for the nonce its <style> and <script> carry for this response.
    assert re.sub(r' nonce="[^"]+"', "", first) == re.sub(r' nonce="[^"]+"', "", again)
    assert "@page{size:80mm" in first and "http" not in first
    # Every picture is inside the page: the sheet prints offline and fetches nothing.
    sources = re.findall(r'<img[^>]* src="([^"]+)"', first)
    assert len(sources) == len(codes) and all(s.startswith("data:image/png;base64,")
                                              for s in sources)
    for code in codes:
        assert f'data-code="{code}"' in first
    response = owner.get(f"/admin/vouchers/{batch_id}.csv")
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert rows[0] == ["code", "package", "price_kes", "state", "created"]
    assert [r[0] for r in rows[1:]] == codes
    assert {(r[1], r[2], r[3]) for r in rows[1:]} == {("1 day", "50", "new")}


def test_swahili_sheet(printed):
    owner, batch_id, _codes = printed
    html = owner.text(f"/admin/vouchers/{batch_id}/print?layout=a4&lang=sw")
    assert "Siku 1" in html and 'lang="sw"' in html
    assert "Jiunge na WiFi, kisha andika msimbo huu au skani QR." in html
    # The package's name already says how long it lasts: said once ("Siku 1"), not
    # "Siku 1 · muda Siku 1".
    assert '<p class="pkg">Siku 1</p>' in html and "muda" not in html


def test_swahili_a4_card_keeps_a_long_name_the_wifi_name_and_the_hint_inside(app, printed):
    """Finding 6: a 46-character venue name and the Swahili hint were cut off the A4 card."""
    from playwright.sync_api import sync_playwright
    from PIL import Image

    from portal.venue.branding import save_branding, save_logo

    owner, batch_id, codes = printed
    venue = "Mama Njeri's Cafe & Guest House, Kiambu Road 2"
    assert len(venue) == 46
    logo = io.BytesIO()
    Image.new("RGB", (300, 100), (138, 21, 56)).save(logo, "PNG")
    with app.app_context(), db.connection_context():
        save_branding("mama-njeri", "", name=venue, color="#8a1538", support_phone="",
                      ssid="MamaNjeri-WiFi")
        save_logo("mama-njeri", "", logo.getvalue(), instance=app.instance_path)
    html = owner.text(f"/admin/vouchers/{batch_id}/print?layout=a4&lang=sw")
    png = ARTIFACTS / "vouchers-a4-sw-long-name.png"
    with sync_playwright() as pw:
        browser = launch(pw)
        try:
            page = browser.new_page(viewport={"width": WIDTHS["a4"], "height": 900},
                                    device_scale_factor=2)
            page.set_content(html)
            page.emulate_media(media="print")
            page.screenshot(path=str(png), full_page=True)
            cards = page.eval_on_selector_all(".card", """cards => cards.map(c => {
                const box = c.getBoundingClientRect(), inner = {top: box.top + c.clientTop,
                    bottom: box.top + c.clientTop + c.clientHeight,
                    left: box.left + c.clientLeft, right: box.left + c.clientLeft + c.clientWidth};
                const part = s => { const r = c.querySelector(s).getBoundingClientRect();
                    return {top: r.top, bottom: r.bottom, left: r.left, right: r.right}; };
                const logo = c.querySelector('.logo');
                return {inner, venue: part('.venue'), hint: part('.hint'), ssid: part('.ssid'),
                        code: part('.code'), qr: part('.qr'), text: c.innerText,
                        logo: logo ? getComputedStyle(logo).backgroundImage.slice(0, 26) : ''};
            })""")
        finally:
            browser.close()
    assert len(cards) == 9
    for card in cards:
        inner = card["inner"]
        for part in ("venue", "hint", "ssid", "code", "qr"):
            box = card[part]
            assert inner["top"] - 0.5 <= box["top"] and box["bottom"] <= inner["bottom"] + 0.5, \
                (part, box, inner)
            assert inner["left"] - 0.5 <= box["left"] and box["right"] <= inner["right"] + 0.5, \
                (part, box, inner)
        assert card["hint"]["top"] >= card["qr"]["bottom"] - 0.5  # the hint is below the QR
        assert venue in card["text"].replace("\n", " ")
        assert "Jiunge na WiFi, kisha andika msimbo huu au skani QR." in \
            card["text"].replace("\n", " ")
        assert "WiFi: MamaNjeri-WiFi" in card["text"]
        assert card["logo"] == 'url("data:image/png;base64'
    assert sorted(decode(png)) == sorted(login_url(DNS, code) for code in codes)
