"""The suite's shared fixtures: the emulators, the one site builder, the app, its client and
the CLI runner. Test modules keep only fixtures of their own subject (a signed-in batch, a
fake hotspot, a librouteros connection); helpers they import (``buy``, ``Browser``,
constants) are in helpers.py.

A test module says what site it needs with a marker, for example
``pytestmark = pytest.mark.site(live_http=True, daraja=True, packages=True)``; without one
the site is the app on a SQLite file in ``tmp_path`` talking to the RouterOS emulator.
``@pytest.mark.router(...)`` and ``@pytest.mark.daraja(...)`` pass options to the emulators.
"""
from __future__ import annotations

import gc
import threading

import pytest
from click.testing import CliRunner
from helpers import STANDARD_PACKAGES, Site, make_users, site_config
from system_tools import launch
from werkzeug.serving import make_server

from portal import create_app
from portal.models import create_schema, db, init_db
from portal.sim.daraja import DarajaSim
from portal.sim.routeros import RouterSim
from portal.sim.sms import SmsSim


def pytest_configure(config):
    """The markers that shape a test's site and emulators."""
    config.addinivalue_line(
        "markers", "site(live_http, daraja, packages, users, demo, **config): the test's site")
    config.addinivalue_line("markers", "router(**options): RouterSim options of router_sim")
    config.addinivalue_line("markers", "daraja(**options): DarajaSim options of daraja_sim")
    config.addinivalue_line("markers", "sms(**options): SmsSim options of sms_sim")


def marker_options(request, name: str) -> dict:
    """The keyword arguments of the closest ``name`` marker (none: empty)."""
    marker = request.node.get_closest_marker(name)
    return dict(marker.kwargs) if marker else {}


# --- the emulators -------------------------------------------------------------------------

@pytest.fixture
def router_sim(request):
    """A running RouterOS emulator with the factory hotspot (options: the ``router`` marker)."""
    sim = RouterSim(**marker_options(request, "router")).start()
    yield sim
    sim.stop()


@pytest.fixture
def daraja_sim(request):
    """A Daraja emulator that decides at once (options: the ``daraja`` marker)."""
    sim = DarajaSim(**{"decision_delay": 0.0, **marker_options(request, "daraja")}).start()
    yield sim
    sim.stop()


@pytest.fixture
def sms_sim(request):
    """A running Africa's Talking SMS emulator (options: the ``sms`` marker)."""
    sim = SmsSim(**marker_options(request, "sms")).start()
    yield sim
    sim.stop()


@pytest.fixture
def receiver():
    """A callback endpoint of our own on a free port (``helpers.CallbackReceiver``)."""
    from helpers import CallbackReceiver

    server = CallbackReceiver()
    yield server
    server.close()


# --- the one site builder ------------------------------------------------------------------

@pytest.fixture
def make_site(request, tmp_path):
    """Build sites: ``make_site(live_http=False, daraja=False, packages=False, users=False,
    demo=False, **config)``; everything built is stopped after the test.

    The app runs on a real SQLite file in ``tmp_path``, pointed at ``router_sim`` and, with
    ``daraja``, at ``daraja_sim``. ``live_http`` serves it on a free port (the emulator's
    callbacks reach it there); ``packages`` seeds the three standard packages; ``users``
    the owner and the technician; ``config`` overrides settings. ``demo`` is the whole
    ``kibanda demo`` site instead (its own emulators, the agent, four packages, the owner).
    """
    shape = marker_options(request, "site")
    # Started before any site, so stopped only after the sites are closed.
    if not shape.get("demo"):
        request.getfixturevalue("router_sim")
    if shape.get("daraja"):
        request.getfixturevalue("daraja_sim")
    closers = []

    def build(*, live_http: bool = False, daraja: bool = False, packages: bool = False,
              users: bool = False, demo: bool = False, **config) -> Site:
        instance = tmp_path / ("instance" if not closers else f"instance-{len(closers) + 1}")
        if demo:
            site, close = _demo_site(instance)
            closers.append(close)
            return site
        router = request.getfixturevalue("router_sim")
        mpesa = request.getfixturevalue("daraja_sim") if daraja else None
        settings = {**site_config(instance, router, mpesa), **config}
        app = create_app(settings)
        site = Site(app, router, mpesa, settings=settings)
        server = thread = None
        if live_http:
            server = make_server("127.0.0.1", 0, app, threaded=True)
            # server_close() then joins callbacks still being handled, before the app is closed.
            server.daemon_threads = False
            site.url = f"http://127.0.0.1:{server.server_port}"
            for key in ("CALLBACK_BASE_URL", "PORTAL_URL"):
                app.config[key] = settings[key] = site.url
            thread = threading.Thread(target=server.serve_forever,
                                      kwargs={"poll_interval": 0.05}, daemon=True)
            thread.start()
        closers.append(lambda: _close_site(app, server, thread))
        db.connect(reuse_if_open=True)
        if packages:
            from portal.venue.packages import create_package

            for fields in STANDARD_PACKAGES:
                create_package(**fields)
        if users:
            make_users(app)
        return site

    yield build
    for close in reversed(closers):
        close()


def _close_site(app, server, thread) -> None:
    """Stop serving, close the app's links and the database."""
    from portal.web import close_clients

    if server is not None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    close_clients(app)
    if not db.is_closed():
        db.close()
    # Surface a leaked socket at the test that leaked it, not at a later one.
    gc.collect()


def _demo_site(instance):
    """``kibanda demo``'s site with a quick emulated customer and the router's clock still."""
    from portal.cli.demo_site import DEMO_DEVICE, DemoSite

    demo = DemoSite(instance, port=0, decision_delay=0.3, router_latency_ms=0,
                    router_clock=None, agent_interval=0.5, run_agent=True)
    demo.start()

    def close():
        demo.stop()
        if not db.is_closed():
            db.close()
        gc.collect()

    try:
        demo.seed()
    except BaseException:
        close()
        raise
    # The demo has joined its own phone (DEMO_DEVICE) to the hotspot.
    site = Site(demo.app, demo.router, demo.daraja, demo.url, settings=demo.settings(),
                login_url=DEMO_DEVICE["link-login-only"], device=None)
    return site, close


@pytest.fixture
def site(make_site, request):
    """The test's site, shaped by its ``site`` marker (default: app and RouterOS emulator)."""
    return make_site(**marker_options(request, "site"))


@pytest.fixture
def app(site):
    """The site's Flask app."""
    return site.app


@pytest.fixture
def client(app):
    """A test client (a browser with cookies) for ``app``."""
    return app.test_client()


@pytest.fixture
def agent(site):
    """The background worker on the site's settings; each cycle is ``agent.loop(now)``."""
    from agent.worker import Agent

    worker = Agent(site.app.config)
    yield worker
    worker.close()


# --- the kibanda command -------------------------------------------------------------------

@pytest.fixture
def runner():
    """Click's runner for ``portal.cli.main`` in-process: ``runner.invoke(main, [...])``."""
    return CliRunner()


@pytest.fixture
def kibanda(runner, tmp_path):
    """Run ``kibanda --instance <tmp>/site ...`` in-process; returns the click result."""
    from portal.cli import main

    instance = tmp_path / "site"

    def run(*args):
        return runner.invoke(main, ["--instance", str(instance), *args])

    yield run
    if not db.is_closed():
        db.close()


# --- a database without an app -------------------------------------------------------------

@pytest.fixture
def db_path(tmp_path):
    """A fresh schema in a SQLite file in ``tmp_path``, no app; yields the file's path."""
    path = str(tmp_path / "kibanda.db")
    init_db(path)
    create_schema()
    yield path
    if not db.is_closed():
        db.close()


@pytest.fixture
def database(db_path):
    """The fresh database of ``db_path``, connected; yields the database handle."""
    db.connect(reuse_if_open=True)
    yield db
    if not db.is_closed():
        db.close()


# --- data and browsers -----------------------------------------------------------------------

@pytest.fixture
def sales(app):
    """A month of known sales around ``helpers.NOW``."""
    from helpers import make_package, nairobi, paid, used_voucher

    from portal.models import Purchase
    from portal.venue.vouchers import create_batch

    hour = make_package(app, name_en="1 hour", price=20, validity="1h")
    day = make_package(app, name_en="1 day", name_sw="Siku 1", price=50, validity="1d")
    week = make_package(app, name_en="1 week", name_sw="Wiki 1", price=250, validity="7d")
    month = make_package(app, name_en="1 month", name_sw="Mwezi 1", price=800, validity="30d")
    with app.app_context(), db.connection_context():
        paid(day, 50, nairobi(11, 11), paid_amount=50, receipt="TCB1")        # today
        paid(hour, 20, nairobi(11, 0, 10))                                    # today, 00:10
        paid(week, 250, nairobi(10, 23, 30), paid_amount=250)                 # 23:30 yesterday
        paid(day, 50, nairobi(11, 10), status=Purchase.FAILED,
             desc="Request cancelled by user", phone="254799999999")          # not money
        paid(month, 800, nairobi(2, 9), paid_amount=800)                      # last week
        paid(day, 50, nairobi(28, 23, month=2), paid_amount=50)               # February
        batch = create_batch(hour, 5, nairobi(1, 8), "mama")
        used_voucher(batch, nairobi(11, 10))                                  # today
        used_voucher(batch, nairobi(9, 8))                                    # Monday
    return {"hour": hour, "day": day, "week": week, "month": month, "batch": batch}


@pytest.fixture(scope="module")
def browser():
    """Debian's chromium driven by playwright, launched once per test module."""
    import playwright.sync_api as sync_api

    with sync_api.sync_playwright() as playwright:
        chromium = launch(playwright)
        yield chromium
        chromium.close()


# --- the hub, on both engines ----------------------------------------------------------------

@pytest.fixture(scope="session")
def postgres_server():
    """A real PostgreSQL server's URL: ``scripts/test``'s, or one started for this session."""
    import os

    from system_tools import POSTGRES_URL_ENV, PostgresServer

    if os.environ.get(POSTGRES_URL_ENV):
        yield os.environ[POSTGRES_URL_ENV]
        return
    server = PostgresServer().start()
    yield server.url
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def hub_database_url(request, tmp_path):
    """Every hub test runs twice: on SQLite (a file) and on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'hub.db'}"
        return
    from helpers import fresh_postgres_database

    base = request.getfixturevalue("postgres_server")
    url, drop = fresh_postgres_database(base)
    yield url
    drop()


@pytest.fixture
def hub_app(hub_database_url, tmp_path):
    """The hub's Flask app on this test's engine, with an operator token."""
    from hub import create_app
    from hub.models import db as hub_db

    app = create_app({"HUB_INSTANCE": str(tmp_path / "hub-instance"),
                      "HUB_DATABASE_URL": hub_database_url,
                      "HUB_OPERATOR_TOKEN": "op-token-for-tests", "TESTING": True})
    yield app
    if not hub_db.is_closed():
        hub_db.close()
    hub_db.obj.close()


@pytest.fixture
def live_hub(hub_app):
    """The hub served on a free loopback port (threads); yields its base URL."""
    server = make_server("127.0.0.1", 0, hub_app, threaded=True)
    server.daemon_threads = False
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)
