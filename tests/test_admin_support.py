"""Fixtures and helpers shared by the admin, voucher and dashboard tests (no tests here).

A test module imports what it needs: ``from test_admin_support import router_sim, site,
...``. The site is the real app on a SQLite file in ``tmp_path`` talking to the RouterOS
emulator over a socket.
"""
from __future__ import annotations

import re

import pytest

from portal import create_app
from portal.venue.accounts import create_admin
from portal.models import AdminUser, db
from portal.venue.packages import create_package
from portal.sim.routeros import RouterSim

OWNER_NAME, OWNER_PASSWORD = "mama-njeri", "chai-na-mandazi"
TECH_NAME, TECH_PASSWORD = "otieno-fundi", "ruta-ya-kwanza"
LAN = "192.168.88.50"


def site_config(instance, port: int, **extra) -> dict:
    """Settings of a test site whose router is the emulator on ``port``."""
    return {"TESTING": True, "INSTANCE_PATH": str(instance), "ROUTER_HOST": "127.0.0.1",
            "ROUTER_PORT": port, "ROUTER_USER": "admin", "ROUTER_PASSWORD": "",
            "ROUTER_TIMEOUT": 2.0, "SITE_NAME": "Mama Njeri Cafe",
            "HOTSPOT_DNS_NAME": "wifi.mamanjeri.co.ke", **extra}


@pytest.fixture
def router_sim():
    """A running RouterOS emulator."""
    sim = RouterSim(port=0).start()
    yield sim
    sim.stop()


@pytest.fixture
def site(tmp_path, router_sim):
    """The app pointed at the emulator; background pushes and the router link are closed."""
    instance = tmp_path / "instance"
    instance.mkdir()
    app = create_app(site_config(instance, router_sim.port))
    yield app
    gateway = app.extensions.get("kibanda.router")
    if gateway is not None:
        gateway.close()
    if not db.is_closed():
        db.close()


def make_users(app) -> None:
    """An owner and a technician."""
    with app.app_context(), db.connection_context():
        create_admin(OWNER_NAME, OWNER_PASSWORD, AdminUser.OWNER)
        create_admin(TECH_NAME, TECH_PASSWORD, AdminUser.TECHNICIAN)


def make_package(app, **fields):
    """A package (not yet on the router)."""
    values = dict(name_en="1 hour", name_sw="Saa 1", price=20, validity="1h",
                  rate_limit="2M/5M", devices=1)
    values.update(fields)
    with app.app_context(), db.connection_context():
        return create_package(**values)


def csrf_of(html: str) -> str:
    """The CSRF token in a page's form."""
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "page has no CSRF field"
    return match.group(1)


class Browser:
    """A signed-in (or not) admin user driving the test client like a browser."""

    def __init__(self, app, address: str = LAN):
        self.client = app.test_client()
        self.address = address

    def get(self, url: str, **kwargs):
        """GET from this browser's address."""
        return self.client.get(url, environ_base={"REMOTE_ADDR": self.address}, **kwargs)

    def post(self, url: str, data: dict | None = None, csrf: bool = True, **kwargs):
        """POST a form with this session's CSRF token (taken from the login page)."""
        form = dict(data or {})
        if csrf:
            form["csrf_token"] = self.token()
        return self.client.post(url, data=form, environ_base={"REMOTE_ADDR": self.address},
                                **kwargs)

    def token(self) -> str:
        """This session's CSRF token (visiting a page first creates it)."""
        with self.client.session_transaction() as session:
            token = session.get("csrf")
        if token is None:
            csrf_of(self.get("/admin/login", follow_redirects=True).get_data(as_text=True))
            with self.client.session_transaction() as session:
                token = session["csrf"]
        return token

    def login(self, username: str = OWNER_NAME, password: str = OWNER_PASSWORD):
        """Sign in through the login form."""
        return self.post("/admin/login", {"username": username, "password": password})

    def text(self, url: str) -> str:
        """A page's HTML, asserting it answered 200."""
        response = self.get(url)
        assert response.status_code == 200, (url, response.status_code)
        return response.get_data(as_text=True)


def visible_text(html: str) -> str:
    """The page's text without tags, whitespace squeezed (what a reader sees)."""
    text = re.sub(r"<(script|style)[^>]*>.*?</\1>", " ", html, flags=re.S)
    text = re.sub(r"<[^>]+>", " ", text)
    text = text.replace("&middot;", "·").replace("&amp;", "&").replace("&#39;", "'")
    return " ".join(text.split())


def run_pushes(app) -> int:
    """Run the voucher pushes the owner's pages queued, as the agent's next cycle does."""
    from agent.worker import Agent
    from portal.timeutil import utcnow
    from portal.web import app_router

    with app.app_context(), db.connection_context():
        return Agent(app.config, gateway=app_router(app)).run_jobs(utcnow())
