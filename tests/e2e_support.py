"""The end-to-end harness: emulated router + emulated M-Pesa + the portal on a real port + agent.

Built on ``portal.demo.DemoSite`` (what ``kibanda demo`` runs), with a temporary instance,
a quick emulated customer and the router's clock left still. Used by the browser tests
and by ``scripts/bench_purchase.py``.
"""
from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import urlencode

from portal.web import app_router
from portal.cli.demo_site import DemoSite
from portal.models import Package, db


class Harness:
    """A running demo site; ``with Harness(tmp) as site:`` starts and stops everything."""

    def __init__(self, folder: str | Path, *, decision_delay: float = 0.3,
                 router_latency_ms: float = 0, agent_interval: float = 0.5,
                 run_agent: bool = True, seed: bool = True):
        self.site = DemoSite(Path(folder) / "instance", port=0, decision_delay=decision_delay,
                             router_latency_ms=router_latency_ms, router_clock=None,
                             agent_interval=agent_interval, run_agent=run_agent)
        self.seed = seed
        self.owner_password: str | None = None

    def __enter__(self) -> "Harness":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> "Harness":
        """Start the site and seed the demo packages and owner."""
        self.site.start()
        if self.seed:
            self.owner_password = self.site.seed()
        return self

    def stop(self) -> None:
        """Stop everything the harness started."""
        self.site.stop()

    # --- where things are ----------------------------------------------------------------

    @property
    def url(self) -> str:
        """The portal's base URL."""
        return self.site.url

    @property
    def router(self):
        """The RouterOS emulator."""
        return self.site.router

    @property
    def daraja(self):
        """The Daraja emulator."""
        return self.site.daraja

    @property
    def app(self):
        """The Flask app served by the portal thread."""
        return self.site.app

    def customer_url(self, mac: str, ip: str, **extra) -> str:
        """The landing page as the router's login.html opens it for one device."""
        query = {"mac": mac, "ip": ip, "link-login-only": "http://wifi.kibanda.lan/login",
                 "link-orig": "http://example.com/", **extra}
        return f"{self.url}/?{urlencode(query, safe=':/')}"

    # --- what the router sees ------------------------------------------------------------------

    def sessions(self, ip: str | None = None, mac: str | None = None) -> list[dict]:
        """Active hotspot sessions on the emulated router (optionally of one device)."""
        rows = self.router.rows("/ip/hotspot/active")
        return [row for row in rows
                if (ip is None or row.get("address") == ip)
                and (mac is None or row.get("mac-address", "").upper() == mac.upper())]

    def wait_for_session(self, ip: str, mac: str, timeout: float = 10.0,
                         poll: float = 0.01) -> dict:
        """Block until the device has an active session; returns it (AssertionError on timeout)."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.sessions(ip, mac)
            if found:
                return found[0]
            if time.monotonic() >= deadline:
                raise AssertionError(f"no active session for {ip} {mac} after {timeout}s")
            time.sleep(poll)

    # --- test data -----------------------------------------------------------------------------

    def package(self, name_en: str) -> Package:
        """A seeded package by English name."""
        with db.connection_context():
            return Package.get(Package.name_en == name_en)

    def make_vouchers(self, package_name: str, count: int = 1) -> list[str]:
        """Create a voucher batch and put it on the router (as the owner's page does)."""
        from portal.venue import vouchers
        from portal.timeutil import utcnow

        with db.connection_context():
            package = Package.get(Package.name_en == package_name)
            batch = vouchers.create_batch(package, count, utcnow(), created_by="e2e")
            vouchers.push_batch(batch.id, app_router(self.app), utcnow())
            return [v.code for v in vouchers.batch_codes(batch)]
