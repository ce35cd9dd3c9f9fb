#!/usr/bin/env python3
"""Benchmark: make, push and print 5,000 vouchers; and the weight of each customer page.

Making: codes generated and stored. Pushing: onto the RouterOS emulator at 2 ms per
reply, pipelined. Printing: the A4 sheet with every card's QR code, as the owner's Print
button renders it (the QR codes of a 5,000-card sheet are all drawn). Target: under 10 s
in all. Then the sheet's size in bytes.

Page weight: each customer page of a demo site (landing, waiting, online, voucher,
reconnect, an error), with everything it loads (its CSS, the logo), in bytes. Target:
under 60 KB each.

Usage: python scripts/bench_vouchers.py [--count N] [--latency-ms MS] [--chunk N]
"""
from __future__ import annotations

import argparse
import io
import re
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urljoin

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from portal.models import Voucher, create_schema, db, init_db  # noqa: E402
from portal.routeros import RouterGateway  # noqa: E402
from portal.sim.routeros import RouterSim  # noqa: E402
from portal.timeutil import utcnow  # noqa: E402
from portal.venue.packages import create_package  # noqa: E402
from portal.venue.printing import render_sheet  # noqa: E402
from portal.venue.vouchers import PUSH_CHUNK, batch_codes, create_batch, push_batch  # noqa: E402

TARGET_SECONDS = 10.0
PAGE_LIMIT = 60 * 1024
VENUE = "Mama Njeri's Cafe & Guest House, Kiambu Road 2"
LANGS = ("en", "sw")


def vouchers(args) -> bool:
    """Make, push and print; print the figures; True when the target is met."""
    with tempfile.TemporaryDirectory() as folder, \
            RouterSim(port=0, latency_ms=args.latency_ms) as sim:
        init_db(str(Path(folder) / "bench.db"))
        create_schema()
        with db.connection_context(), RouterGateway("127.0.0.1", sim.port, "admin", "",
                                                    timeout=10) as gateway:
            package = create_package(name_en="1 day", name_sw="Siku 1", price=50,
                                     validity="1d", rate_limit="2M/5M")
            start = time.perf_counter()
            batch = create_batch(package, args.count, utcnow(), "bench")
            made = time.perf_counter()
            counts = push_batch(batch.id, gateway, utcnow(), chunk=args.chunk)
            pushed = time.perf_counter()
            sheet = render_sheet(batch, list(batch_codes(batch)), layout="a4", venue=VENUE,
                                 dns_name="wifi.mamanjeri.co.ke", lang="sw",
                                 ssid="MamaNjeri-WiFi")
            printed = time.perf_counter()
            on_router = sum(1 for row in sim.rows("/ip/hotspot/user")
                            if row.get("comment") == f"kibanda voucher batch {batch.id}")
            in_db = Voucher.select().where(Voucher.batch == batch.id).count()
    total = printed - start
    qr_codes = sheet.count('class="qr" src="data:image/png;base64,')
    print(f"vouchers:           {args.count} (chunks of {args.chunk}, "
          f"{args.latency_ms:g} ms router latency per reply)")
    print(f"make (generate + store): {made - start:6.2f} s")
    print(f"push to router:          {pushed - made:6.2f} s  "
          f"({args.count / (pushed - made):,.0f} codes/s)")
    print(f"print (A4, QR on every card): {printed - pushed:6.2f} s  "
          f"({qr_codes} QR codes)")
    print(f"total:                   {total:6.2f} s  ({args.count / total:,.0f} codes/s)")
    print(f"sheet size:              {len(sheet.encode('utf-8')):,} bytes "
          f"({len(sheet.encode('utf-8')) / args.count:,.0f} bytes a card)")
    print(f"in database: {in_db}, on router: {on_router}, marked on router: {counts.on_router}, "
          f"failed: {counts.failed}")
    ok = total < TARGET_SECONDS and on_router == counts.on_router == args.count \
        and qr_codes == args.count
    print(f"target under {TARGET_SECONDS:g} s: {'met' if ok else 'MISSED'}")
    return ok


def _weight(session, url: str, method: str = "GET", **kwargs) -> tuple[int, str]:
    """Bytes of the page at ``url`` and of the stylesheets, scripts and images it loads."""
    response = session.request(method, url, timeout=30, **kwargs)
    html = response.text
    total = len(response.content)
    for asset in set(re.findall(r'<(?:link[^>]+href|script[^>]+src|img[^>]+src)="([^"]+)"',
                                html)):
        if asset.startswith("data:"):
            continue
        total += len(session.get(urljoin(response.url, asset.replace("&amp;", "&")),
                                 timeout=30).content)
    return total, response.url


def page_weights() -> bool:
    """Each customer page of a demo site, with what it loads; True when all are < 60 KB."""
    import logging

    import requests
    from PIL import Image

    from portal.cli.demo_site import DemoSite
    from portal.models import Package
    from portal.venue.branding import save_branding, save_logo

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        site = DemoSite(Path(folder) / "instance", decision_delay=0.2, agent_interval=0.5)
        with site:
            site.seed()
            logo = io.BytesIO()
            Image.new("RGB", (480, 160), (10, 125, 79)).save(logo, "JPEG")
            with db.connection_context():
                save_branding("bench", "", name=VENUE, color="#0a7d4f",
                              support_phone="0722000111")
                save_logo("bench", "", logo.getvalue(), instance=site.instance)
                package = Package.get(Package.name_en == "1 hour")
                code = create_batch(package, 1, utcnow(), "bench").vouchers[0].code
            for lang in LANGS:
                phone = requests.Session()
                index = LANGS.index(lang)
                landing = site.customer_url(mac=f"AA:BB:CC:00:0{index}:09",
                                            ip=f"10.5.50.{90 + index}") + f"&lang={lang}"
                rows.append((lang, "landing", *_weight(phone, landing)[:1]))
                rows.append((lang, "reconnect", _weight(phone, site.url + "/reconnect")[0]))
                rows.append((lang, "wrong voucher", _weight(
                    phone, site.url + "/voucher", "POST", data={"code": "00000000"})[0]))
                weight, waiting = _weight(phone, site.url + "/buy", "POST", data={
                    "package": str(package.id), "phone": f"07123456{80 + index}"})
                rows.append((lang, "waiting", weight))
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline and \
                        phone.get(waiting + ".json", timeout=10).json()["status"] != "online":
                    time.sleep(0.3)
                rows.append((lang, "online", _weight(phone, waiting)[0]))
                if lang == "en":
                    rows.append((lang, "voucher online", _weight(
                        phone, site.url + "/voucher", "POST", data={"code": code})[0]))
                rows.append((lang, "not found", _weight(phone, site.url + "/no-such-page")[0]))
    print("customer page weight (HTML + CSS + logo), target under 60 KB:")
    for lang, name, weight in rows:
        print(f"  {lang}  {name:<15} {weight:>7,} bytes")
    ok = all(weight < PAGE_LIMIT for _lang, _name, weight in rows)
    print(f"every page under 60 KB: {'yes' if ok else 'NO'}")
    return ok


def main() -> int:
    """Run both benchmarks; exit status 1 when either misses its target."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--latency-ms", type=float, default=2.0)
    parser.add_argument("--chunk", type=int, default=PUSH_CHUNK)
    args = parser.parse_args()
    ok = vouchers(args)
    ok = page_weights() and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
