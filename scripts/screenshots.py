#!/usr/bin/env python3
"""Screenshots of every customer and owner page at 360 x 740, in English and Swahili.

Starts ``kibanda demo``'s site (``portal.cli.demo_site.DemoSite``: the portal on a real
port, the RouterOS and Daraja emulators, the agent) in a temporary folder, gives it
something to show (a paid sale, a cancelled one, a sale whose callback was lost, a voucher
batch, free access, a logo and a WiFi name), then walks Debian's chromium through every
page: the customer's (landing with a data bundle, a night bundle and the free trial,
waiting, online, top-up, voucher, reconnect, errors, 404, a free trial) and the
owner's (every page of the admin menu, a batch, its A4 and 58 mm sheets, sign-in).

Run ``python scripts/screenshots.py [--out artifacts/screens-all]``; it prints each file
it wrote with the page's size in bytes. Look at them: nothing here asserts anything.
"""
from __future__ import annotations

import argparse
import io
import logging
import re
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-quic"]
VENUE = "Mama Njeri's Cafe & Guest House, Kiambu Road 2"  # 46 characters, as in finding 6


def prepare(site) -> None:
    """Branding, a voucher batch on the router and a free access code to show."""
    from PIL import Image

    from portal.models import Package, db
    from portal.routeros import RouterGateway
    from portal.timeutil import utcnow
    from portal.venue.branding import save_branding, save_logo
    from portal.venue.packages import create_package
    from portal.venue.trial import save_trial
    from portal.venue.vouchers import create_batch, push_batch

    logo = io.BytesIO()
    Image.new("RGB", (240, 80), (10, 125, 79)).save(logo, "PNG")
    gateway = RouterGateway(site.host, site.router.port, site.router.user,
                            site.router.password, name="screenshots router")
    try:
        with db.connection_context():
            save_branding("owner", "", name=VENUE, color="#0a7d4f", support_phone="0722000111",
                          ssid="MamaNjeri-WiFi")
            save_logo("owner", "", logo.getvalue(), instance=site.instance)
            batch = create_batch(Package.get(Package.name_en == "1 day"), 12, utcnow(), "owner")
            push_batch(batch.id, gateway, utcnow())
            # What venues sell beside hours: a data bundle that slows down, a night bundle,
            # and the free trial on the landing page.
            create_package(name_en="1 GB", name_sw="GB 1", price=20, validity="1d",
                           rate_limit="2M/5M", data_cap="1GB", fair_use_rate="256k/256k",
                           sort_order=5)
            create_package(name_en="Night", name_sw="Usiku", price=30, validity="8h",
                           hours="22:00-06:00", outside="wait", sort_order=6)
            trial_package = Package.get(Package.name_en == "1 hour")
            save_trial("owner", "", minutes="15", package_id=str(trial_package.id))
    finally:
        gateway.close()
    # Paid from the M-Pesa menu to no purchase's account, at no package's price: review.
    site.daraja.pay_from_menu("254700009876", 37, account="WIFI")


def main() -> int:
    """Start the site, take every screenshot, print what was written."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("artifacts") / "screens-all")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    from portal.cli.demo_site import DEMO_OWNER, DemoSite
    from portal.models import Voucher, db

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # not every request
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    written: list[tuple[str, int]] = []
    with tempfile.TemporaryDirectory() as folder:
        site = DemoSite(Path(folder) / "instance", decision_delay=0.3, agent_interval=0.5)
        with site, sync_playwright() as pw:
            password = site.seed()
            prepare(site)
            with db.connection_context():
                codes = [v.code for v in Voucher.select().order_by(Voucher.id).limit(4)]
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                for number, lang in enumerate(("en", "sw")):
                    context = browser.new_context(viewport={"width": 360, "height": 740},
                                                  locale="en-US")
                    context.set_default_timeout(20_000)
                    page = context.new_page()

                    def shot(name: str) -> None:
                        path = out / f"{lang}-{name}.png"
                        page.screenshot(path=str(path), full_page=True)
                        written.append((path.name, len(page.content().encode("utf-8"))))

                    customer(page, site, lang, number, codes, shot)
                    owner(page, site, lang, password, DEMO_OWNER, shot)
                    context.close()
            finally:
                browser.close()
    for name, size in written:
        print(f"{out / name}  ({size:,} bytes of HTML)")
    return 0


def customer(page, site, lang: str, number: int, codes: list[str], shot) -> None:
    """Every page a customer sees, in ``lang``."""
    mac = f"AA:BB:CC:00:0{number}:"
    page.goto(site.customer_url(mac=mac + "01", ip=f"10.5.50.{10 + number}") + f"&lang={lang}")
    shot("customer-01-landing")
    page.fill("#voucher-code", "00000000")
    page.locator("form[action='/voucher'] button").click()
    page.wait_for_load_state()
    shot("customer-02-wrong-voucher")
    buy(page, site.customer_url(mac=mac + "02", ip=f"10.5.50.{20 + number}"),
        "0712 345 6" + f"{70 + number}")
    page.wait_for_url(re.compile(r"/purchases/"))
    shot("customer-03-waiting")
    page.wait_for_selector('#status[data-status="online"]')
    shot("customer-04-online")
    page.locator("#buy-more").click()
    page.wait_for_load_state()
    shot("customer-04b-top-up")
    # A cancelled push in English, a wrong PIN in Swahili (one phone is not asked twice).
    buy(page, site.customer_url(mac=mac + "03", ip=f"10.5.50.{30 + number}"),
        ("0700001032", "0700002001")[number])
    page.wait_for_selector('#status[data-status="failed"]')
    shot("customer-05-failed")
    page.goto(site.customer_url(mac=mac + "04", ip=f"10.5.50.{40 + number}"))
    page.fill("#voucher-code", codes[number])
    page.locator("form[action='/voucher'] button").click()
    page.wait_for_selector("#access-code")
    shot("customer-06-voucher-online")
    page.goto(site.url + "/reconnect")
    shot("customer-07-reconnect")
    page.goto(site.url + "/no-such-page")
    shot("customer-08-not-found")
    buy(page, site.customer_url(mac=mac + "05", ip=f"10.5.50.{50 + number}"), "12345")
    page.wait_for_load_state()
    shot("customer-09-bad-phone")
    page.goto(site.customer_url(mac=mac + "06", ip=f"10.5.50.{60 + number}"))
    page.fill("#trial-phone", "0712 345 6" + f"{80 + number}")
    page.locator("#trial-form button[type=submit]").click()
    page.wait_for_selector("#access-code")
    shot("customer-10-free-trial")


def buy(page, landing: str, phone: str) -> None:
    """On the landing page: the first package, ``phone``, Pay."""
    page.goto(landing)
    page.locator(".pkg input[type=radio]").first.check()
    page.fill("#phone", phone)
    page.locator("#buy-form button[type=submit]").click()


def owner(page, site, lang: str, password: str, username: str, shot) -> None:
    """Every page of the owner's menu, in ``lang``."""
    page.goto(site.url + f"/admin/login?lang={lang}")
    shot("owner-01-sign-in")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.locator("form button[type=submit]").click()
    page.wait_for_load_state()
    pages = ["dashboard", "vouchers", "packages", "packages/new", "router", "grant",
             "search?q=0712", "audit", "users", "branding", "password", "menu-payments", "sms"]
    for index, path in enumerate(pages, start=2):
        page.goto(f"{site.url}/admin/{path}")
        shot(f"owner-{index:02d}-{re.sub(r'[^a-z]+', '-', path).strip('-')}")
    batch = follow_first(page, f"{site.url}/admin/vouchers", "a[href*='/admin/vouchers/']")
    shot("owner-20-voucher-batch")
    for layout in ("a4", "58mm"):
        page.goto(f"{site.url}{batch}/print?layout={layout}")
        shot(f"owner-21-print-{layout}")
    follow_first(page, f"{site.url}/admin/packages", "a[href*='/edit']")
    shot("owner-22-package-edit")
    follow_first(page, f"{site.url}/admin/search?q=0712", "a[href*='grant-devices']")
    shot("owner-23-grant-devices")


def follow_first(page, listing: str, selector: str) -> str:
    """Open ``listing``, then the first link matching ``selector``; returns its path."""
    page.goto(listing)
    target = page.locator(selector).first.get_attribute("href")
    page.goto(listing.split("/admin/")[0] + target)
    return target


if __name__ == "__main__":
    sys.exit(main())
