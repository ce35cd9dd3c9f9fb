"""Helpers the tests import (no fixtures here: those are in conftest.py).

``Site`` is what the ``site`` fixture yields: the app on a real SQLite file, the RouterOS
emulator it talks to and, when asked, the Daraja emulator and the portal's URL. ``buy``
starts a purchase through the ledger; ``Browser`` drives the admin pages through the test
client; ``CallbackReceiver`` stands in for a callback endpoint; the rest are small waits,
clocks and page readers.
"""
from __future__ import annotations

import json
import re
import sys
import threading
import time
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode

import requests

from portal.cli.demo_site import free_port, listening  # noqa: F401 - for tests
from portal.models import AdminUser, Package, Purchase, Voucher, db
from portal.mpesa import parse_callback
from portal.timeutil import utcnow

SECRET = "test-callback-secret"
#: The customer's phone: the router lists it as a hotspot host (``Site`` joins it).
MAC, IP = "AA:BB:CC:DD:EE:01", "10.5.50.23"
#: Where the customer's requests come from, as the portal sees them (the test client's).
SOURCE = "127.0.0.1"
LOGIN_URL = "http://10.5.50.1/login"
PAYER = "254708374149"          # success, one callback
LOST = "254700009001"           # success, callback lost (query says success)
TWICE = "254700009002"          # success, callback sent twice
CANCELS = "254700001032"        # cancelled by the customer
ACTIVE = "/ip/hotspot/active"
USERS = "/ip/hotspot/user"

OWNER_NAME, OWNER_PASSWORD = "mama-njeri", "chai-na-mandazi"
TECH_NAME, TECH_PASSWORD = "otieno-fundi", "ruta-ya-kwanza"
LAN = "192.168.88.50"

#: The three packages a site is seeded with (``@pytest.mark.site(packages=True)``).
STANDARD_PACKAGES = [
    dict(name_en="1 hour", name_sw="Saa 1", price=10, validity="1h", rate_limit="2M/5M",
         devices=1),
    dict(name_en="1 day", name_sw="Siku 1", price=50, validity="1d", rate_limit="2M/5M",
         devices=2),
    dict(name_en="1 week", name_sw="Wiki 1", price=250, validity="7d", rate_limit="3M/8M",
         devices=3),
]

#: ``kibanda`` as a separate process, with this checkout's code.
KIBANDA = [sys.executable, "-c", "from portal.cli import main; main(prog_name='kibanda')"]


def site_config(instance, router, daraja=None, url: str = "") -> dict:
    """Settings of a test site whose router (and, if given, M-Pesa) is an emulator.

    Without ``url`` (the portal is not served) callbacks go to a port nobody listens on.
    """
    config = {
        "TESTING": True, "INSTANCE_PATH": str(instance),
        "ROUTER_HOST": "127.0.0.1", "ROUTER_PORT": router.port, "ROUTER_USER": router.user,
        "ROUTER_PASSWORD": router.password, "ROUTER_TIMEOUT": 2.0,
        "SITE_NAME": "Mama Njeri Cafe", "HOTSPOT_DNS_NAME": "wifi.mamanjeri.co.ke",
        "HOTSPOT_ADDRESS": "10.5.50.1",
        "CALLBACK_SECRET": SECRET, "PORTAL_URL": url or "http://127.0.0.1:8080",
        "CALLBACK_BASE_URL": url or "http://127.0.0.1:9",
    }
    if daraja is not None:
        config.update({
            "MPESA_BASE_URL": daraja.base_url, "MPESA_CONSUMER_KEY": daraja.consumer_key,
            "MPESA_CONSUMER_SECRET": daraja.consumer_secret,
            "MPESA_SHORTCODE": daraja.shortcode, "MPESA_PASSKEY": daraja.passkey,
            "MPESA_READ_TIMEOUT": 5.0,
        })
    return config


class Site:
    """The running pieces of one test site."""

    def __init__(self, app, router, daraja=None, url: str = "", settings: dict | None = None,
                 login_url: str = LOGIN_URL, device: tuple[str, str] | None = (IP, MAC)):
        self.app, self.router, self.daraja, self.url = app, router, daraja, url
        #: What the app was created with (a restarted app or a subprocess can reuse it).
        self.settings = settings or {}
        self.login_url = login_url
        if device is not None:
            self.device_joins(*device)

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

    # --- what the router sees ------------------------------------------------------------

    def online(self, username: str | None = None, ip: str = IP) -> bool:
        """Is a device with ``ip`` logged in on the router (as ``username``, if given)?"""
        return any(row.get("address") == ip and (username is None or row.get("user") == username)
                   for row in self.router.rows(ACTIVE))

    def user_names(self) -> list[str]:
        """Hotspot users on the router."""
        return [row["name"] for row in self.router.rows(USERS)]

    def sessions(self, ip: str | None = None, mac: str | None = None) -> list[dict]:
        """Active hotspot sessions on the emulated router (optionally of one device)."""
        rows = self.router.rows(ACTIVE)
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

    # --- what a phone or Safaricom does ------------------------------------------------------

    def device_joins(self, ip: str, mac: str) -> None:
        """A phone joins the hotspot: the router lists it, so its device fields check out."""
        self.router.device_joins(ip, mac)

    def customer_url(self, mac: str, ip: str, **extra) -> str:
        """The landing page as the router's login.html opens it for one device (which has
        joined the hotspot)."""
        if mac and ip:
            self.device_joins(ip, mac)
        query = {"mac": mac, "ip": ip, "link-login-only": self.login_url,
                 "link-orig": "http://example.com/", **extra}
        return f"{self.url}/?{urlencode(query, safe=':/')}"

    def callback(self, body: dict | bytes, secret: str = SECRET) -> requests.Response:
        """POST a callback body to the live portal, as Safaricom would."""
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        return requests.post(f"{self.url}/mpesa/callback/{secret}", data=data,
                             headers={"Content-Type": "application/json"}, timeout=10)

    # --- test data -----------------------------------------------------------------------------

    def package(self, name_en: str) -> Package:
        """A package by English name."""
        with db.connection_context():
            return Package.get(Package.name_en == name_en)

    def make_vouchers(self, package_name: str, count: int = 1) -> list[str]:
        """Create a voucher batch and put it on the router (as the owner's page does)."""
        from portal.venue import vouchers

        with db.connection_context():
            package = Package.get(Package.name_en == package_name)
            batch = vouchers.create_batch(package, count, utcnow(), created_by="e2e")
            vouchers.push_batch(batch.id, self.gateway, utcnow())
            return [v.code for v in vouchers.batch_codes(batch)]


# --- purchases -------------------------------------------------------------------------------

def package(name: str = "1 hour") -> Package:
    """A seeded package by English name."""
    return Package.get(Package.name_en == name)


def buy(site: Site, phone: str = PAYER, name: str = "1 hour", now=None, *,
        answered: bool = False, **device) -> Purchase:
    """Start a purchase through the ledger, as ``POST /buy`` does, from a phone that has
    joined the hotspot (``mac`` and ``ip``, default the standard device).

    With ``answered``, wait until the emulated customer has answered the prompt.
    """
    from portal.ledger import purchases

    device = {"mac": MAC, "ip": IP, **device}
    if device["mac"] and device["ip"]:
        site.device_joins(device["ip"], device["mac"])
    purchase = purchases.start_purchase(
        package(name).id, phone, mac=device["mac"], ip=device["ip"],
        link_login_only=LOGIN_URL, link_orig="http://example.com/", mpesa=site.mpesa,
        callback_url=purchases.callback_url(site.app.config), now=now or utcnow(),
        gateway=site.gateway, source=SOURCE)
    assert purchase.checkout_request_id, purchase.result_desc
    if answered:
        txn = site.daraja.transaction(purchase.checkout_request_id)
        time.sleep(max(0.0, txn["decided_monotonic"] - time.monotonic()) + 0.05)
    return purchase


def wait_for(predicate, timeout: float = 5.0, step: float = 0.05):
    """Poll ``predicate`` (re-reading the database) until true or ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(step)


def later(seconds: int):
    """Now plus ``seconds`` (naive UTC)."""
    return utcnow() + timedelta(seconds=seconds)


# --- the owner's side --------------------------------------------------------------------------

def make_users(app) -> None:
    """An owner and a technician."""
    from portal.venue.accounts import create_admin

    with app.app_context(), db.connection_context():
        create_admin(OWNER_NAME, OWNER_PASSWORD, AdminUser.OWNER)
        create_admin(TECH_NAME, TECH_PASSWORD, AdminUser.TECHNICIAN)


def make_package(app, **fields):
    """A package (not yet on the router)."""
    from portal.venue.packages import create_package

    values = dict(name_en="1 hour", name_sw="Saa 1", price=20, validity="1h",
                  rate_limit="2M/5M", devices=1)
    values.update(fields)
    with app.app_context(), db.connection_context():
        return create_package(**values)


def batch_users(sim, batch_id: int) -> list[str]:
    """The hotspot users of one voucher batch on the emulated router."""
    comment = f"kibanda voucher batch {batch_id}"
    return [row["name"] for row in sim.rows(USERS) if row.get("comment") == comment]


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


# --- a month of sales (the ``sales`` fixture, reports and dashboard) ------------------------

# Wednesday 11 March 2026, 12:00 in Nairobi (UTC+3).
NOW = datetime(2026, 3, 11, 9, 0)


def nairobi(day: int, hour: int, minute: int = 0, month: int = 3) -> datetime:
    """A Nairobi wall-clock time in 2026 as stored naive UTC."""
    return datetime(2026, month, day, hour, minute) - timedelta(hours=3)


def paid(package, amount, at, paid_amount=None, phone="254712345678", receipt=None,
         status=Purchase.PAID, desc=None) -> Purchase:
    """A purchase row as the ledger leaves it (paid unless told otherwise)."""
    return Purchase.create(phone=phone, package=package, amount=amount, paid_amount=paid_amount,
                           status=status, settled_at=at if status == Purchase.PAID else None,
                           created_at=at, receipt=receipt, result_desc=desc)


def used_voucher(batch, at) -> None:
    """Mark the batch's next unused voucher as first used at ``at``."""
    voucher = Voucher.select().where((Voucher.batch == batch.id)
                                     & Voucher.first_login_at.is_null()).first()
    Voucher.update(state=Voucher.USED, first_login_at=at).where(Voucher.id == voucher.id).execute()


# --- ports -------------------------------------------------------------------------------------

class CallbackReceiver:
    """A tiny HTTP server standing in for the portal's callback endpoint.

    It keeps each POST's body and its request target exactly as received (``targets``),
    and answers ``status`` (200 unless a test changes it).
    """

    def __init__(self, path: str = "/mpesa/callback/s3cret"):
        self.bodies: list[bytes] = []
        self.targets: list[str] = []
        self.status = 200
        self.arrived = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.arrived:
                    receiver.bodies.append(body)
                    receiver.targets.append(self.path)
                    receiver.arrived.notify_all()
                    status = receiver.status
                payload = b'{"ResultCode":0,"ResultDesc":"Accepted"}'
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = False
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.url = self.base + path
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.02})
        self.thread.start()

    def for_checkout(self, checkout_request_id: str) -> list:
        """Callbacks received for one push, decoded by the client's parser."""
        with self.arrived:
            return self._for_checkout_locked(checkout_request_id)

    def wait(self, checkout_request_id: str, count: int = 1, timeout: float = 3.0) -> list:
        """Wait until ``count`` callbacks for the push arrived (or the timeout)."""
        deadline = time.monotonic() + timeout
        with self.arrived:
            while True:
                found = self._for_checkout_locked(checkout_request_id)
                left = deadline - time.monotonic()
                if len(found) >= count or left <= 0:
                    return found
                self.arrived.wait(left)

    def _for_checkout_locked(self, checkout_request_id):
        return [c for c in map(parse_callback, self.bodies)
                if c.checkout_request_id == checkout_request_id]

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


def run_pushes(app) -> int:
    """Run the voucher pushes the owner's pages queued, as the agent's next cycle does."""
    from agent.worker import Agent
    from portal.web import app_router

    with app.app_context(), db.connection_context():
        return Agent(app.config, gateway=app_router(app)).run_jobs(utcnow())


# --- the hub -----------------------------------------------------------------------------------

def fresh_postgres_database(server_url: str):
    """A new, empty database on the test PostgreSQL server: (its URL, a function dropping it)."""
    import uuid

    import psycopg

    name = "hub_" + uuid.uuid4().hex[:12]
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = server_url.rsplit("/", 1)[0] + "/" + name

    def drop():
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return url, drop


class HubSiteKey:
    """A site's key talking to a hub app's test client the way the agent does (signed)."""

    def __init__(self, client, slug: str = "cafe-1", name: str = "Cafe One"):
        from hub.ingest import make_token
        from hub.models import db as hub_db
        from portal import signing

        self.client, self.slug = client, slug
        self.key = signing.new_key()
        with hub_db.connection_context():
            self.token = make_token(slug, name)
        answer = client.post("/v1/enroll", json={"token": self.token,
                                                  "public_key": signing.public_key_b64(self.key),
                                                  "name": name})
        assert answer.status_code == 201, answer.get_json()
        self.key_id = answer.get_json()["key_id"]

    def headers(self, method: str, path: str, body: bytes = b"", now: float | None = None):
        """The four signed headers for one request."""
        import time

        from portal import signing

        return signing.sign_headers(self.key, self.slug, method, path, body,
                                    time.time() if now is None else now)

    def post(self, path: str, payload, now: float | None = None):
        """A signed POST of ``payload`` (JSON) to ``path``."""
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        return self.client.post(path, data=body, content_type="application/json",
                                headers=self.headers("POST", path, body, now))

    def get(self, path: str, now: float | None = None):
        """A signed GET of ``path`` (with its query)."""
        return self.client.get(path, headers=self.headers("GET", path, b"", now))

    def send(self, events: list[dict], now: float | None = None):
        """POST a batch to the site's events endpoint."""
        return self.post(f"/v1/sites/{self.slug}/events", {"events": events}, now)


def sale_event(seq: int, amount: int = 50, paid_at: str = "2026-03-11T08:00:00Z",
               event_id: str | None = None) -> dict:
    """One contract "sale" EVENT."""
    import uuid

    return {"id": event_id or str(uuid.uuid4()), "seq": seq, "kind": "sale", "at": paid_at,
            "data": {"amount": amount, "source": "mpesa", "package": "1 day",
                     "receipt": f"TC{seq:08d}", "reference": None, "phone": "0712 xxx 678",
                     "paid_at": paid_at}}


def enroll_site(config, hub_url: str, slug: str = "cafe-1") -> str:
    """Enroll a test site with a hub, as ``kibanda enroll`` does: the key file in its
    instance folder, and the hub URL, site id and key id in its settings. Returns the key id."""
    from pathlib import Path

    from hub.ingest import make_token
    from hub.models import db as hub_db
    from portal import signing

    with hub_db.connection_context():
        token = make_token(slug, "Mama Njeri Cafe")
    key = signing.load_or_create_key(Path(config["INSTANCE_PATH"]) / signing.SITE_KEY_FILE)
    answer = requests.post(f"{hub_url}/v1/enroll", timeout=10, json={
        "token": token, "public_key": signing.public_key_b64(key)})
    assert answer.status_code == 201, answer.text
    config.update(UPSTREAM_URL=hub_url, SITE_ID=slug, UPSTREAM_KEY_ID=answer.json()["key_id"])
    return config["UPSTREAM_KEY_ID"]


def outbox_sales(count: int, start, spacing_seconds: float = 1.0, amount: int = 20) -> None:
    """``count`` sale events in the site's outbox, one every ``spacing_seconds`` from ``start``."""
    import uuid

    from portal.models import OutboxEvent, db

    rows = []
    for n in range(count):
        at = start + timedelta(seconds=n * spacing_seconds)
        payload = {"amount": amount, "source": "voucher", "package": "1 hour", "receipt": None,
                   "reference": None, "phone": None,
                   "paid_at": at.strftime("%Y-%m-%dT%H:%M:%SZ")}
        rows.append({"uuid": str(uuid.uuid4()), "kind": "sale", "created_at": at,
                     "payload": json.dumps(payload, sort_keys=True)})
    with db.atomic():
        for chunk in range(0, len(rows), 500):
            OutboxEvent.insert_many(rows[chunk:chunk + 500]).execute()


def start_hub(folder, database_url: str, workers: int = 1, **environment):
    """``kibanda hub`` as its own process (gunicorn), listening; returns (process, URL)."""
    import os
    import subprocess

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KIBANDA_")}
    env.update(KIBANDA_HUB_DATABASE_URL=database_url, KIBANDA_HUB_OPERATOR_TOKEN="op-token",
               **environment)
    proc = subprocess.Popen([*KIBANDA, "hub", "--hub-instance", str(folder), "--host",
                             "127.0.0.1", "--port", str(port), "--workers", str(workers)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 30
    while not listening(port):
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
        time.sleep(0.1)
    return proc, f"http://127.0.0.1:{port}"


def stop_process(proc) -> str:
    """SIGTERM, wait, and return what it wrote to stderr."""
    import signal

    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=30)
    return err or ""


def hub_event_count(hub_url: str, slug: str) -> int:
    """How many events the hub holds for ``slug`` (from GET /v1/sites)."""
    sites = requests.get(f"{hub_url}/v1/sites", timeout=10,
                         headers={"Authorization": "Bearer op-token"}).json()["sites"]
    return next((site["events"] for site in sites if site["site"] == slug), 0)


# --- the SMS emulator, spoken to directly --------------------------------------------------------

SMS_HEADERS = {"apiKey": "kibanda-demo-sms-key", "Accept": "application/json"}


def sms_send(sim, to: str = "+254711000001", message: str = "Your code is K7P2Q",
             headers: dict | None = None, timeout: float = 5, **fields) -> requests.Response:
    """POST a send to ``SmsSim`` as Africa's Talking's SDKs do (form fields, apiKey header);
    a field given as None is left out."""
    form = {"username": "sandbox", "to": to, "message": message, **fields}
    form = {name: value for name, value in form.items() if value is not None}
    return requests.post(sim.url + "/version1/messaging", data=form,
                         headers=SMS_HEADERS if headers is None else headers, timeout=timeout)


def sms_recipients(response: requests.Response) -> list[dict]:
    """The Recipients of a 201 answer (fails on any other status)."""
    assert response.status_code == 201, response.text
    return response.json()["SMSMessageData"]["Recipients"]


def delivery_reports(receiver: CallbackReceiver) -> list[dict]:
    """The form-encoded delivery reports a ``CallbackReceiver`` got, each decoded."""
    with receiver.arrived:
        return [{k: v[0] for k, v in parse_qs(body.decode()).items()}
                for body in receiver.bodies]


def sms_settings(sim, **extra) -> dict:
    """A site's settings for SMS through ``SmsSim`` (its sandbox account)."""
    return {"SMS_USERNAME": sim.username, "SMS_API_KEY": sim.api_key, "SMS_BASE_URL": sim.url,
            **extra}
