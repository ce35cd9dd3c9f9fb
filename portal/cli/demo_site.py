"""A whole site on one machine: emulated router and M-Pesa, the portal and the agent.

``DemoSite`` starts the RouterOS emulator, the Daraja emulator, the portal (werkzeug's
threaded server, in a thread) and the agent (in a thread), all on loopback, with an
instance folder pointed at the emulators. ``kibanda demo``, the end-to-end tests and the
purchase benchmark all run it.
"""
from __future__ import annotations

import errno
import secrets
import socket
import threading
from pathlib import Path
from urllib.parse import urlencode

from werkzeug.serving import WSGIRequestHandler, make_server

from agent.worker import Agent

from .. import create_app
from ..config import ensure_instance, write_config_values
from ..crypto import new_password
from ..models import db
from ..routeros import RouterGateway
from ..sim.daraja import DarajaSim
from ..sim.daraja_rules import SANDBOX_PASSKEY, SANDBOX_SHORTCODE
from ..sim.routeros import RouterSim
from ..sim.sms import SmsSim
from ..venue.accounts import create_admin
from ..venue.packages import create_package, sync_profile
from ..ledger.c2b import c2b_urls
from ..ledger.sms import delivery_url as sms_delivery_url
from ..web import app_mpesa, close_clients
from ..web.callback import redact_secret

DEMO_OWNER = "owner"
#: The phone the demo pretends to be, as the router's login page would send it.
DEMO_DEVICE = {"mac": "AA:BB:CC:00:00:01", "ip": "10.5.50.23",
               "link-login-only": "http://wifi.kibanda.lan/login",
               "link-orig": "http://example.com/"}
DEMO_PACKAGES = [
    dict(name_en="1 hour", name_sw="Saa 1", price=10, validity="1h", rate_limit="2M/5M", devices=1),
    dict(name_en="1 day", name_sw="Siku 1", price=50, validity="1d", rate_limit="2M/5M", devices=1),
    dict(name_en="1 week", name_sw="Wiki 1", price=250, validity="7d", rate_limit="3M/8M", devices=2),
    dict(name_en="1 month", name_sw="Mwezi 1", price=800, validity="30d", rate_limit="5M/10M", devices=3),
]


class PortBusy(Exception):
    """The portal's port is taken by another program (the message says what to do)."""


def check_port_free(host: str, port: int) -> None:
    """Raise PortBusy (with what to do) when ``host:port`` cannot be bound."""
    if port == 0:
        return
    probe = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    try:
        probe.bind((host, port))
    except OSError as exc:
        if exc.errno in (errno.EADDRINUSE, errno.EACCES):
            raise PortBusy(f"port {port} on {host} is already in use (another kibanda demo "
                           f"or web server?)") from exc
        raise
    finally:
        probe.close()


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (for a server started next)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def listening(port: int, host: str = "127.0.0.1") -> bool:
    """True when something accepts connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


class DemoSite:
    """Emulated router + emulated M-Pesa + portal + agent, started and stopped together."""

    def __init__(self, instance: str | Path, *, host: str = "127.0.0.1", port: int = 0,
                 decision_delay: float = 3.0, router_latency_ms: float = 0,
                 router_clock: str | None = "real", agent_interval: float = 1.0,
                 run_agent: bool = True, extra_settings: dict | None = None):
        self.instance = Path(instance).resolve()
        self.host = host
        self.requested_port = port
        self.decision_delay = decision_delay
        self.router_latency_ms = router_latency_ms
        self.router_clock = router_clock
        self.agent_interval = agent_interval
        self.run_agent = run_agent
        self.extra_settings = dict(extra_settings or {})
        self.router = None
        self.daraja = None
        self.sms = None
        self.app = None
        self.agent = None
        self.server = None
        self.port = 0
        self._stop_agent = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def url(self) -> str:
        """The portal's base URL."""
        return f"http://{self.host}:{self.port}"

    def customer_url(self, **device) -> str:
        """The landing page as the router's login page opens it for a phone (which has
        joined the hotspot, so the router can vouch for its fields)."""
        fields = {**DEMO_DEVICE, **device}
        if self.router is not None and fields.get("mac") and fields.get("ip"):
            self.router.device_joins(fields["ip"], fields["mac"])
        return f"{self.url}/?{urlencode(fields, safe=':/')}"

    def settings(self) -> dict:
        """Everything that points the instance at the emulators and at this portal."""
        return {
            "SITE_NAME": "Kibanda Demo Cafe",
            "ROUTER_HOST": self.host, "ROUTER_PORT": self.router.port,
            "ROUTER_USER": self.router.user, "ROUTER_PASSWORD": self.router.password,
            "ROUTER_TIMEOUT": 5.0,
            "MPESA_BASE_URL": self.daraja.base_url,
            "MPESA_CONSUMER_KEY": self.daraja.consumer_key,
            "MPESA_CONSUMER_SECRET": self.daraja.consumer_secret,
            "MPESA_SHORTCODE": SANDBOX_SHORTCODE, "MPESA_PASSKEY": SANDBOX_PASSKEY,
            "MPESA_TYPE": "paybill",
            "PORTAL_URL": self.url, "CALLBACK_BASE_URL": self.url,
            # The agent also pulls the emulator's records (catches lost confirmations).
            "MPESA_PULL_NOMINATED_NUMBER": "254708374149",
            # Receipts and the owner's messages go to the SMS emulator's sandbox account.
            "SMS_USERNAME": self.sms.username, "SMS_API_KEY": self.sms.api_key,
            "SMS_BASE_URL": self.sms.url,
            **self.extra_settings,
        }

    def start(self) -> "DemoSite":
        """Start everything; on any failure stop what already started and re-raise."""
        check_port_free(self.host, self.requested_port)
        try:
            self.router = RouterSim(host=self.host, password=secrets.token_urlsafe(12),
                                    latency_ms=self.router_latency_ms,
                                    clock=self.router_clock).start()
            # The phone the demo pretends to be has joined the hotspot.
            self.router.device_joins(DEMO_DEVICE["ip"], DEMO_DEVICE["mac"])
            # Its control interface lets a person "pay from the M-Pesa menu" (the banner says how).
            self.daraja = DarajaSim(host=self.host, decision_delay=self.decision_delay,
                                    control_port=0).start()
            self.sms = SmsSim(host=self.host, control_port=0).start()
            # Bind first: the callback URL and PORTAL_URL need the real port.
            ensure_instance(self.instance)
            self.server = make_server(self.host, self.requested_port, _LateApp(), threaded=True,
                                      request_handler=_RedactingHandler)
            self.port = self.server.server_port
            settings = self.settings()
            # Written for a technician to read; passed again below so KIBANDA_* variables
            # in the shell cannot point the demo at a real router or a real till.
            write_config_values(self.instance, settings)
            self.app = create_app(settings, instance=str(self.instance))
            # The emulator reports delivery to the portal, as Africa's Talking would.
            self.sms.delivery_report_url = sms_delivery_url(self.app.config)
            self.server.app.target = self.app
            self.register_c2b_urls()
            self._spawn(self.server.serve_forever, "portal-http", poll_interval=0.1)
            if self.run_agent:
                self.agent = Agent(self.app.config)
                self._spawn(self.agent.run, "kibanda-agent", stop=self._stop_agent,
                            interval=self.agent_interval)
        except BaseException:
            self.stop()
            raise
        return self

    def register_c2b_urls(self) -> None:
        """Register the portal's C2B URLs with the emulated M-Pesa, as ``kibanda mpesa
        register-urls`` does at a real site (the sandbox cannot)."""
        with db.connection_context():
            app_mpesa(self.app).register_c2b_urls(*c2b_urls(self.app.config))

    def pay_from_menu_command(self, amount: int = 10, account: str = "<account>") -> str:
        """The control-interface call that pays the PayBill from a test phone's menu."""
        return (f"curl -s -X POST http://{self.host}:{self.daraja.control_port}/c2b/pay "
                f"-d '{{\"phone\": \"254712000001\", \"amount\": {amount}, "
                f"\"account\": \"{account}\"}}'")

    def _spawn(self, target, name: str, **kwargs) -> None:
        thread = threading.Thread(target=target, name=name, kwargs=kwargs, daemon=True)
        self._threads.append(thread)
        thread.start()

    def seed(self, owner_password: str | None = None) -> str:
        """Add the four demo packages and the owner account; returns the owner's password."""
        password = owner_password or new_password()
        gateway = RouterGateway(self.host, self.router.port, self.router.user,
                                self.router.password, name="demo router")
        try:
            with db.connection_context():
                for order, fields in enumerate(DEMO_PACKAGES):
                    package = create_package(actor="kibanda demo", sort_order=order, **fields)
                    sync_profile(package, gateway)
                create_admin(DEMO_OWNER, password, actor="kibanda demo")
        finally:
            gateway.close()
        return password

    def stop(self) -> None:
        """Stop the agent, the portal and both emulators; safe to call twice."""
        self._stop_agent.set()
        if self.server is not None and self._threads:
            self.server.shutdown()
        for thread in self._threads:
            thread.join(timeout=10)
        self._threads.clear()
        if self.server is not None:
            self.server.server_close()
            self.server = None
        if self.app is not None:
            close_clients(self.app)
        for sim in (self.sms, self.daraja, self.router):
            if sim is not None:
                sim.stop()
        self.sms = self.daraja = self.router = None

    def __enter__(self) -> "DemoSite":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class _RedactingHandler(WSGIRequestHandler):
    """werkzeug's request log (``kibanda demo --verbose``) without the callback secret."""

    def log(self, type: str, message: str, *args) -> None:
        """Log as werkzeug does, with ``/mpesa/callback/***`` in place of the secret."""
        super().log(type, redact_secret(message),
                    *(redact_secret(a) if isinstance(a, str) else a for a in args))


class _LateApp:
    """A WSGI app filled in after the server is bound (the app needs the bound port)."""

    target = None

    def __call__(self, environ, start_response):
        if self.target is None:
            start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
            return [b"starting\n"]
        return self.target(environ, start_response)
