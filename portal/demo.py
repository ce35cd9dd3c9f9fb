"""``kibanda demo``: the whole appliance on one laptop, against the emulators.

``DemoSite`` starts the RouterOS emulator, the Daraja emulator, the portal (werkzeug's
threaded server, in a thread) and the agent (in a thread), all on loopback, with a demo
instance folder pointed at the emulators. The end-to-end tests and the benchmark reuse it.
"""
from __future__ import annotations

import errno
import logging
import secrets
import shutil
import signal
import socket
import threading
from pathlib import Path
from urllib.parse import urlencode

import click

log = logging.getLogger("kibanda.demo")

#: Marks a folder as made by ``kibanda demo`` so a rerun may wipe it (and nothing else).
DEMO_MARKER = ".kibanda-demo"
DEMO_OWNER = "owner"
#: The phone the demo pretends to be, as the router's login page would send it.
DEMO_DEVICE = {"mac": "AA:BB:CC:00:00:01", "ip": "10.5.50.23",
               "link-login-only": "http://wifi.kibanda.lan/login",
               "link-orig": "http://example.com/"}


class PortBusy(click.ClickException):
    """The portal's port is taken by another program."""


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
                           f"or web server?). Stop it, or pick another: kibanda demo "
                           f"--port {port + 1}") from exc
        raise
    finally:
        probe.close()


def reset_instance(path: Path) -> None:
    """Give the demo a fresh instance folder; refuse to wipe one the demo did not make."""
    if path.exists():
        if not (path / DEMO_MARKER).exists() and any(path.iterdir()):
            raise click.ClickException(
                f"{path} exists and was not made by kibanda demo; choose another --dir")
        shutil.rmtree(path)
    path.mkdir(parents=True)
    (path / DEMO_MARKER).write_text("made by kibanda demo: wiped and recreated on every run\n")


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
        """The landing page as the router's login page opens it for a phone."""
        return f"{self.url}/?{urlencode({**DEMO_DEVICE, **device}, safe=':/')}"

    def settings(self) -> dict:
        """Everything that points the instance at the emulators and at this portal."""
        from .sim.daraja_rules import SANDBOX_PASSKEY, SANDBOX_SHORTCODE

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
            **self.extra_settings,
        }

    def start(self) -> "DemoSite":
        """Start everything; on any failure stop what already started and re-raise."""
        from werkzeug.serving import make_server

        from . import create_app
        from .config import ensure_instance, write_config_values
        from .sim.daraja import DarajaSim
        from .sim.routeros import RouterSim

        check_port_free(self.host, self.requested_port)
        try:
            self.router = RouterSim(host=self.host, password=secrets.token_urlsafe(12),
                                    latency_ms=self.router_latency_ms,
                                    clock=self.router_clock).start()
            self.daraja = DarajaSim(host=self.host, decision_delay=self.decision_delay).start()
            # Bind first: the callback URL and PORTAL_URL need the real port.
            ensure_instance(self.instance)
            self.server = make_server(self.host, self.requested_port, _LateApp(), threaded=True)
            self.port = self.server.server_port
            settings = self.settings()
            # Written for a technician to read; passed again below so KIBANDA_* variables
            # in the shell cannot point the demo at a real router or a real till.
            write_config_values(self.instance, settings)
            self.app = create_app(settings, instance=str(self.instance))
            self.server.app.target = self.app
            self._spawn(self.server.serve_forever, "portal-http", poll_interval=0.1)
            if self.run_agent:
                from agent.worker import Agent

                self.agent = Agent(self.app.config)
                self._spawn(self.agent.run, "kibanda-agent", stop=self._stop_agent,
                            interval=self.agent_interval)
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn(self, target, name: str, **kwargs) -> None:
        thread = threading.Thread(target=target, name=name, kwargs=kwargs, daemon=True)
        self._threads.append(thread)
        thread.start()

    def seed(self, owner_password: str | None = None) -> str:
        """Add the four demo packages and the owner account; returns the owner's password."""
        from .accounts import create_admin
        from .crypto import new_password
        from .models import db
        from .packages import DEMO_PACKAGES, create_package, sync_profile

        from .router import RouterGateway

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
            for name in ("kibanda.router", "kibanda.mpesa"):
                client = self.app.extensions.pop(name, None)
                if client is not None and hasattr(client, "close"):
                    client.close()
        for sim in (self.daraja, self.router):
            if sim is not None:
                sim.stop()
        self.daraja = self.router = None

    def __enter__(self) -> "DemoSite":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class _LateApp:
    """A WSGI app filled in after the server is bound (the app needs the bound port)."""

    target = None

    def __call__(self, environ, start_response):
        if self.target is None:
            start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
            return [b"starting\n"]
        return self.target(environ, start_response)


def banner(site: DemoSite, password: str) -> str:
    """What the demo prints once everything is up."""
    from .sim.daraja_rules import TEST_NUMBER_TABLE

    phones = "\n".join("  " + line.strip("|").replace(" | ", "  ->  ").strip()
                       for line in TEST_NUMBER_TABLE.splitlines()[2:])
    return f"""
Kibanda demo is running (instance folder {site.instance}, reset on every run).

  Customer page (a phone joining the hotspot, mac {DEMO_DEVICE['mac']}, ip {DEMO_DEVICE['ip']}):
    {site.customer_url()}

  Pay with any of these M-Pesa test numbers (the emulated customer answers in {site.decision_delay:g} s):
{phones}

  Admin pages: {site.url}/admin/
    user: {DEMO_OWNER}
    password: {password}

  Emulated router: RouterOS API on {site.host}:{site.router.port} (user {site.router.user}, password {site.router.password})
  Emulated M-Pesa (Daraja): {site.daraja.base_url}

Press Ctrl-C to stop.
"""


@click.command("demo")
@click.option("--port", default=8080, show_default=True, type=int, help="Portal port.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address for the portal and the emulators (loopback by default).")
@click.option("--dir", "folder", default="instance-demo", show_default=True,
              type=click.Path(file_okay=False), help="Demo instance folder (wiped each run).")
@click.option("--decision-delay", default=3.0, show_default=True, type=float,
              help="Seconds the emulated customer takes to answer the M-Pesa prompt.")
@click.option("--verbose", is_flag=True, help="Log every HTTP request and agent step.")
def demo_command(port: int, host: str, folder: str, decision_delay: float, verbose: bool) -> None:
    """Run a complete demo site on this machine: emulated router and M-Pesa, portal, agent."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not verbose:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
    check_port_free(host, port)
    path = Path(folder).resolve()
    reset_instance(path)
    stop = threading.Event()
    # Only set the flag: the main thread then stops every part in order.
    previous = {sig: signal.signal(sig, lambda *_: stop.set())
                for sig in (signal.SIGINT, signal.SIGTERM)}
    site = DemoSite(path, host=host, port=port, decision_delay=decision_delay)
    try:
        site.start()
        password = site.seed()
        click.echo(banner(site, password))
        while not stop.wait(0.5):
            pass
        click.echo("stopping the demo ...")
    finally:
        site.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    click.echo("demo stopped")
