"""The owner's branding page: name, colour, help phone and logo on every page that shows the
venue (landing, hotspot pages, voucher sheets, admin header), and what it refuses."""
from __future__ import annotations

import io
import re
import struct
import zlib
from pathlib import Path

import pytest
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart
from helpers import TECH_NAME, TECH_PASSWORD, Browser, make_package, make_users, visible_text
from system_tools import launch

from portal.cli import main
from portal.models import AuditLog, Setting, db
from portal.timeutil import utcnow
from portal.venue.vouchers import create_batch

NEW = {"name": "Kwa Wanjiku Hotel", "color": "#8A1538", "support_phone": "0722 000 111"}
DEFAULT_NAME = "Mama Njeri Cafe"  # the test site's configured name
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"


def png(width: int = 120, height: int = 40, rgb=(255, 200, 0)) -> bytes:
    """A real PNG: a coloured band with a white stripe (so a screenshot shows it)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))
    rows = b""
    for y in range(height):
        colour = bytes((255, 255, 255)) if height // 3 <= y < 2 * height // 3 else bytes(rgb)
        rows += b"\x00" + colour * width
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
            + chunk(b"IEND", b""))


def owner(app) -> Browser:
    make_users(app)
    browser = Browser(app)
    browser.login()
    return browser


def landing(app) -> str:
    """The landing page as a customer's phone gets it."""
    response = app.test_client().get("/")
    assert response.status_code == 200
    return response.get_data(as_text=True)


def save(browser: Browser, logo: tuple[bytes, str] | None = None, **change):
    form = {**NEW, **change}
    if logo is None:
        return browser.post("/admin/branding", form)
    # A phone photo is megabytes: the body is built in memory (the test client would
    # spool it to a temporary file it never closes when the app refuses it unread).
    form.update(logo=FileStorage(io.BytesIO(logo[0]), logo[1]), csrf_token=browser.token())
    boundary, body = encode_multipart(form)
    return browser.client.post("/admin/branding", data=body,
                               content_type=f"multipart/form-data; boundary={boundary}",
                               environ_base={"REMOTE_ADDR": browser.address})


def audit_actions(app) -> list[str]:
    with app.app_context(), db.connection_context():
        return [e.action for e in AuditLog.select().order_by(AuditLog.id)]


def branding_rows(app) -> dict:
    with app.app_context(), db.connection_context():
        return {s.key: s.value for s in Setting.select().where(Setting.key.startswith("branding."))}


def test_owner_changes_name_colour_and_phone_and_every_page_shows_them(app, tmp_path, runner):
    browser = owner(app)
    form = browser.text("/admin/branding")
    assert f'value="{DEFAULT_NAME}"' in form and 'type="color"' in form
    saved = save(browser)
    assert saved.status_code == 302
    page = visible_text(browser.get(saved.location).get_data(as_text=True))
    assert "Saved. Customers see the new look on their next page." in page
    assert page.startswith("Branding - Kwa Wanjiku Hotel Kwa Wanjiku Hotel")  # admin header

    html = landing(app)
    assert "<h1>Kwa Wanjiku Hotel</h1>" in html and DEFAULT_NAME not in html
    assert "--brand:#8a1538" in html
    assert "Help: 0722 000 111" in visible_text(html)
    assert 'href="tel:+254722000111"' in html
    assert branding_rows(app)["branding.support_phone"] == "254722000111"

    hotspot = app.test_client().get("/hotspot-html/login.html").get_data(as_text=True)
    assert "Kwa Wanjiku Hotel" in hotspot and "#8a1538" in hotspot
    assert DEFAULT_NAME not in hotspot

    package = make_package(app)
    with app.app_context(), db.connection_context():
        batch = create_batch(package, 2, utcnow(), "mama-njeri")
    sheet = browser.text(f"/admin/vouchers/{batch.id}/print?layout=58mm")
    assert '<p class="venue">Kwa Wanjiku Hotel</p>' in sheet and DEFAULT_NAME not in sheet
    out = tmp_path / "cards.html"
    printed = runner.invoke(main, ["--instance", app.instance_path, "vouchers", "print",
                                        str(batch.id), "--out", str(out)])
    assert printed.exit_code == 0, printed.output
    assert '<p class="venue">Kwa Wanjiku Hotel</p>' in out.read_text(encoding="utf-8")

    assert audit_actions(app).count("branding.update") == 1
    activity = visible_text(browser.text("/admin/audit"))
    assert "Branding changed Kwa Wanjiku Hotel" in activity

    # An owner who clears the help phone means "no phone", not the configured one.
    assert save(browser, support_phone="").status_code == 302
    assert "Help:" not in visible_text(landing(app))


@pytest.mark.parametrize("change, field, message", [
    ({"color": "red"}, "color", "The colour must look like #0a7d4f"),
    ({"color": "#0a7d4f;}body{"}, "color", "The colour must look like #0a7d4f"),
    ({"color": "#12345"}, "color", "The colour must look like #0a7d4f"),
    ({"support_phone": "0202 123 456"}, "support_phone", "The help phone must be a Kenyan mobile"),
    ({"support_phone": "hello"}, "support_phone", "The help phone must be a Kenyan mobile"),
    ({"name": "   "}, "name", "Give the venue a name (up to 60 characters)."),
    ({"name": "W" * 61}, "name", "Give the venue a name (up to 60 characters)."),
    ({"name": "Free WiFi $(link-login-only)"}, "name", "The name cannot contain $("),
])
def test_bad_input_gets_the_fields_message_and_changes_nothing(app, change, field, message):
    browser = owner(app)
    before = landing(app)
    response = save(browser, logo=(png(), "logo.png"), **change)
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert message in visible_text(html)
    assert re.search(rf'<label class="invalid">[^<]*<[^>]*name="{field}"|'
                     rf'<label class="invalid">.*?name="{field}"', html, re.S)
    if field != "name":
        assert 'value="Kwa Wanjiku Hotel"' in html  # what was typed is still there
    assert landing(app) == before  # nothing changed, not even the logo that came along
    assert branding_rows(app) == {}
    assert not any(a.startswith("branding.") for a in audit_actions(app))


def test_swahili_page_and_message(app):
    browser = owner(app)
    page = visible_text(browser.text("/admin/branding?lang=sw"))
    assert "Utambulisho" in page and "Jina la biashara" in page
    refused = save(browser, color="blue")
    assert "Rangi iandikwe kama #0a7d4f" in visible_text(refused.get_data(as_text=True))


def test_png_logo_shows_on_the_landing_and_is_served_as_png(app):
    browser = owner(app)
    picture = png()
    assert save(browser, logo=(picture, "shop logo.PNG")).status_code == 302
    html = landing(app)
    match = re.search(r'<header>\s*<img src="(/branding/logo\?v=([0-9a-f]+))"', html)
    assert match, html[:600]
    customer = app.test_client()
    served = customer.get(match.group(1))
    assert served.status_code == 200 and served.mimetype == "image/png"
    assert served.get_data() == picture
    assert "immutable" in served.headers["Cache-Control"]
    assert customer.get("/branding/logo?v=old").headers["Cache-Control"] == "no-cache"
    preview = browser.text("/admin/branding")
    assert f'src="{match.group(1)}"' in preview and "Remove logo" in preview

    # A new logo is a new URL, so phones that cached the old one fetch it at once.
    jpeg = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 200 + b"\xff\xd9"
    assert save(browser, logo=(jpeg, "logo.jpeg")).status_code == 302
    newer = re.search(r'<img src="/branding/logo\?v=([0-9a-f]+)"', landing(app)).group(1)
    assert newer != match.group(2)
    served = customer.get(f"/branding/logo?v={newer}")
    assert served.mimetype == "image/jpeg" and served.get_data() == jpeg
    folder = Path(app.instance_path) / "branding"
    assert sorted(p.name for p in folder.iterdir()) == ["logo.jpg"]

    removed = browser.post("/admin/branding/logo/remove", follow_redirects=True)
    assert "The logo is removed." in visible_text(removed.get_data(as_text=True))
    assert "<img" not in landing(app)
    assert customer.get("/branding/logo").status_code == 404
    assert list(folder.iterdir()) == []
    actions = audit_actions(app)
    assert actions.count("branding.logo") == 2 and "branding.logo_remove" in actions


@pytest.mark.parametrize("content, filename, status, message", [
    pytest.param(b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>', "logo.svg",
     400, "The logo must be a PNG or JPEG picture.", id="svg"),
    pytest.param(b"this is only text, whatever the name says\n", "logo.png", 400,
     "The logo must be a PNG or JPEG picture.", id="text-named-png"),
    pytest.param(png()[:40] + b"\x00" * (201 * 1024), "big.png", 400,
                 "The logo must be a PNG or JPEG picture.", id="broken-picture-over-200KB"),
    pytest.param(png()[:40] + b"\x00" * (13 * 1024 * 1024), "huge.png", 413,
                 "The file is too big: at most 12 MB.", id="over-request-limit"),
])
def test_refused_logo_changes_nothing(app, content, filename, status, message):
    browser = owner(app)
    response = save(browser, logo=(content, filename))
    assert response.status_code == status
    assert message in visible_text(response.get_data(as_text=True))
    html = landing(app)
    assert "<img" not in html and "Kwa Wanjiku Hotel" not in html
    assert app.test_client().get("/branding/logo").status_code == 404
    assert not (Path(app.instance_path) / "branding").exists()
    assert branding_rows(app) == {}


def test_a_phone_photo_is_resized_not_refused_and_the_wifi_name_is_kept(app):
    from PIL import Image

    # A 4000 x 3000 camera picture of about 3 MB (noise does not compress), taken with the
    # phone on its side: EXIF orientation 6 says "turn it right".
    import os

    photo = Image.frombytes("RGB", (4000, 3000), os.urandom(4000 * 3000 * 3))
    exif = Image.Exif()
    exif[0x0112] = 6
    raw = io.BytesIO()
    photo.save(raw, "JPEG", quality=80, exif=exif)
    assert raw.tell() > 1024 * 1024
    browser = owner(app)
    saved = save(browser, logo=(raw.getvalue(), "IMG_2041.jpg"), ssid="Kwa Wanjiku WiFi")
    assert saved.status_code == 302
    stored = app.test_client().get(re.search(r'src="(/branding/logo\?v=[0-9a-f]+)"',
                                             landing(app)).group(1)).get_data()
    assert len(stored) <= 30 * 1024  # light enough for a customer page under 60 KB
    logo = Image.open(io.BytesIO(stored))
    assert logo.format == "JPEG" and logo.size == (90, 120)  # upright, inside 360 x 120
    assert branding_rows(app)["branding.ssid"] == "Kwa Wanjiku WiFi"
    assert 'value="Kwa Wanjiku WiFi"' in browser.text("/admin/branding")
    refused = save(browser, ssid="W" * 33)
    assert refused.status_code == 400
    assert "The WiFi name must be at most 32" in visible_text(refused.get_data(as_text=True))
    assert branding_rows(app)["branding.ssid"] == "Kwa Wanjiku WiFi"


def test_technician_is_refused(app):
    make_users(app)
    tech = Browser(app)
    tech.login(TECH_NAME, TECH_PASSWORD)
    assert tech.get("/admin/branding").status_code == 403
    assert "Branding" not in visible_text(tech.text("/admin/packages"))  # not in the menu
    refused = save(tech, logo=(png(), "logo.png"))
    assert refused.status_code == 403
    assert tech.post("/admin/branding/logo/remove").status_code == 403
    assert DEFAULT_NAME in landing(app) and branding_rows(app) == {}


def test_post_without_csrf_token_changes_nothing(app):
    browser = owner(app)
    refused = browser.post("/admin/branding", {**NEW, "logo": (io.BytesIO(png()), "l.png")},
                           csrf=False)
    assert refused.status_code == 400
    assert "This form has expired" in visible_text(refused.get_data(as_text=True))
    assert DEFAULT_NAME in landing(app) and branding_rows(app) == {}
    assert not any(a.startswith("branding.") for a in audit_actions(app))


# -- what a phone actually shows ---------------------------------------------------------

@pytest.mark.site(live_http=True)  # the browser fetches the logo as its own request
def test_phone_shows_the_logo_name_and_colour(app, site):
    import playwright.sync_api as playwright_sync
    make_package(app, name_en="1 hour", price=20)
    make_package(app, name_en="1 day", name_sw="Siku 1", price=50, validity="1d")
    assert save(owner(app), logo=(png(160, 48), "logo.png")).status_code == 302
    with playwright_sync.sync_playwright() as playwright:
        chromium = launch(playwright)
        try:
            context = chromium.new_context(viewport={"width": 360, "height": 740},
                                           locale="en-US")
            page = context.new_page()
            page.goto(site.url + "/?mac=AA:BB:CC:00:11:22&ip=10.5.50.23")
            logo = page.locator("header img")
            logo.wait_for()
            page.wait_for_function("document.querySelector('header img').complete")
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "branding-landing.png"))
            assert logo.evaluate("img => img.naturalWidth") == 160
            box = logo.bounding_box()
            assert box["height"] <= 40.5 and box["width"] <= 80.5  # small, beside the name
            assert page.locator("header h1").inner_text() == "Kwa Wanjiku Hotel"
            header = page.locator("header").evaluate("h => getComputedStyle(h).backgroundColor")
            assert header == "rgb(138, 21, 56)"
            assert page.get_by_text("Help: 0722 000 111").is_visible()
            context.close()
        finally:
            chromium.close()


def test_owner_turns_the_free_trial_on_and_off(app):
    make_users(app)
    make_package(app, name_en="1 hour", price=10, validity="1h")
    browser = Browser(app)
    browser.login()
    bad = browser.post("/admin/trial", {"minutes": "5000", "package": "1"})
    assert bad.status_code == 400
    assert "Free minutes must be a whole number from 0 (off) to 1440." in \
        visible_text(bad.get_data(as_text=True))
    on = browser.post("/admin/trial", {"minutes": "15", "package": "1"}, follow_redirects=True)
    assert "Saved. The free trial is on." in visible_text(on.get_data(as_text=True))
    assert "15 minutes free" in visible_text(app.test_client().get("/").get_data(as_text=True))
    off = browser.post("/admin/trial", {"minutes": "", "package": "1"}, follow_redirects=True)
    assert "Saved. The free trial is off." in visible_text(off.get_data(as_text=True))
    assert "Try it free" not in app.test_client().get("/").get_data(as_text=True)
    with app.app_context(), db.connection_context():
        actions = [e.action for e in AuditLog.select().order_by(AuditLog.id)]
    assert actions[-2:] == ["trial.on", "trial.off"]
