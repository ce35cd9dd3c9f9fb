"""A whole site for the sales tests: RouterOS and Daraja emulators and the portal served on a
real socket (so the emulator's callbacks reach it). Imported by the sales test modules."""
from __future__ import annotations

import gc
import json
import threading
from datetime import timedelta

import pytest
import requests
from werkzeug.serving import make_server

from portal import create_app
from portal.models import Package, Purchase, db
from portal.venue.packages import create_package
from portal.sim.daraja import DarajaSim
from portal.sim.routeros import RouterSim
from portal.timeutil import utcnow

SECRET = "test-callback-secret"
PASSKEY = "bfb279f9aa9bdbcf158e97dd71a467cd2e0c893059b10f78e6b72ada1ed2c919"
MAC, IP = "AA:BB:CC:DD:EE:01", "10.5.50.23"
LOGIN_URL = "http://10.5.50.1/login"
PAYER = "254708374149"          # success, one callback
LOST = "254700009001"           # success, callback lost (query says success)
TWICE = "254700009002"          # success, callback sent twice
CANCELS = "254700001032"        # cancelled by the customer
ACTIVE = "/ip/hotspot/active"
USERS = "/ip/hotspot/user"


def site_config(instance, router_port: int, daraja_url: str, portal_url: str = "") -> dict:
    """Settings of a test site pointing at the emulators."""
    return {
        "TESTING": True, "INSTANCE_PATH": str(instance),
        "ROUTER_HOST": "127.0.0.1", "ROUTER_PORT": router_port, "ROUTER_USER": "admin",
        "ROUTER_PASSWORD": "", "ROUTER_TIMEOUT": 1.0,
        "MPESA_BASE_URL": daraja_url, "MPESA_CONSUMER_KEY": "kibanda-demo-key",
        "MPESA_CONSUMER_SECRET": "kibanda-demo-secret", "MPESA_SHORTCODE": "174379",
        "MPESA_PASSKEY": PASSKEY, "MPESA_READ_TIMEOUT": 5.0,
        "CALLBACK_SECRET": SECRET, "PORTAL_URL": portal_url or "http://127.0.0.1:8080",
        "CALLBACK_BASE_URL": portal_url,
    }


class Site:
    """The running pieces of one test site."""

    def __init__(self, app, router: RouterSim, daraja: DarajaSim, url: str):
        self.app, self.router, self.daraja, self.url = app, router, daraja, url

    @property
    def mpesa(self):
        """The portal's own M-Pesa client."""
        from portal.web import app_mpesa

        return app_mpesa(self.app)

    @property
    def gateway(self):
        """The portal's own router gateway."""
        from portal.web import app_router

        return app_router(self.app)

    def online(self, username: str | None = None, ip: str = IP) -> bool:
        """Is a device with ``ip`` logged in on the router (as ``username``, if given)?"""
        return any(row.get("address") == ip and (username is None or row.get("user") == username)
                   for row in self.router.rows(ACTIVE))

    def user_names(self) -> list[str]:
        """Hotspot users on the router."""
        return [row["name"] for row in self.router.rows(USERS)]

    def callback(self, body: dict | bytes, secret: str = SECRET) -> requests.Response:
        """POST a callback body to the live portal, as Safaricom would."""
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        return requests.post(f"{self.url}/mpesa/callback/{secret}", data=data,
                             headers={"Content-Type": "application/json"}, timeout=10)


@pytest.fixture
def router_sim():
    """A RouterOS emulator with the factory hotspot."""
    sim = RouterSim().start()
    yield sim
    sim.stop()


@pytest.fixture
def daraja_sim():
    """A Daraja emulator that decides at once."""
    sim = DarajaSim(decision_delay=0.0).start()
    yield sim
    sim.stop()


def close_app(app) -> None:
    """Close the app's router and M-Pesa clients and its database handle."""
    for ext in ("kibanda.router", "kibanda.mpesa"):
        client = app.extensions.pop(ext, None)
        if client is not None and hasattr(client, "close"):
            client.close()


@pytest.fixture
def site(tmp_path, router_sim, daraja_sim):
    """The portal served over HTTP on a free port, with both emulators and three packages."""
    instance = tmp_path / "instance"
    app = create_app(site_config(instance, router_sim.port, daraja_sim.base_url))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    # server_close() then joins callbacks still being handled, before the app is closed.
    server.daemon_threads = False
    url = f"http://127.0.0.1:{server.server_port}"
    app.config["CALLBACK_BASE_URL"] = app.config["PORTAL_URL"] = url
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    db.connect(reuse_if_open=True)
    create_package(name_en="1 hour", name_sw="Saa 1", price=10, validity="1h",
                   rate_limit="2M/5M", devices=1)
    create_package(name_en="1 day", name_sw="Siku 1", price=50, validity="1d",
                   rate_limit="2M/5M", devices=2)
    create_package(name_en="1 week", name_sw="Wiki 1", price=250, validity="7d",
                   rate_limit="3M/8M", devices=3)
    try:
        yield Site(app, router_sim, daraja_sim, url)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
        close_app(app)
        if not db.is_closed():
            db.close()
        # Surface a leaked socket at the test that leaked it, not at a later one.
        gc.collect()


def package(name: str = "1 hour") -> Package:
    """A seeded package by English name."""
    return Package.get(Package.name_en == name)


def buy(site: Site, phone: str = PAYER, name: str = "1 hour", now=None, **device) -> Purchase:
    """Start a purchase through the ledger, as ``POST /buy`` does."""
    from portal.ledger import grants, purchases, settlement, status

    device = {"mac": MAC, "ip": IP, **device}
    return purchases.start_purchase(package(name).id, phone, mac=device["mac"], ip=device["ip"],
                                link_login_only=LOGIN_URL, link_orig="http://example.com/",
                                mpesa=site.mpesa, callback_url=purchases.callback_url(site.app.config),
                                now=now or utcnow())


def wait_for(predicate, timeout: float = 5.0, step: float = 0.05):
    """Poll ``predicate`` (re-reading the database) until true or ``timeout``."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(step)


def later(seconds: int):
    """Now plus ``seconds`` (naive UTC)."""
    return utcnow() + timedelta(seconds=seconds)
