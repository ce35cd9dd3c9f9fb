"""``kibanda demo``: the whole appliance on one laptop, against the emulators (:mod:`.demo_site`)."""
from __future__ import annotations

import logging
import shutil
import signal
import threading
from pathlib import Path

import click

from ..sim.daraja_rules import TEST_NUMBER_TABLE
from .demo_site import DEMO_DEVICE, DEMO_OWNER, DemoSite, PortBusy, check_port_free

log = logging.getLogger("kibanda.demo")

#: Marks a folder as made by ``kibanda demo`` so a rerun may wipe it (and nothing else).
DEMO_MARKER = ".kibanda-demo"


def reset_instance(path: Path) -> None:
    """Give the demo a fresh instance folder; refuse to wipe one the demo did not make."""
    if path.exists():
        if not (path / DEMO_MARKER).exists() and any(path.iterdir()):
            raise click.ClickException(
                f"{path} exists and was not made by kibanda demo; choose another --dir")
        shutil.rmtree(path)
    path.mkdir(parents=True)
    (path / DEMO_MARKER).write_text("made by kibanda demo: wiped and recreated on every run\n")


def banner(site: DemoSite, password: str) -> str:
    """What the demo prints once everything is up."""
    phones = "\n".join("  " + line.strip("|").replace(" | ", "  ->  ").strip()
                       for line in TEST_NUMBER_TABLE.splitlines()[2:])
    return f"""
Kibanda demo is running (instance folder {site.instance}, reset on every run).

  Customer page (a phone joining the hotspot, mac {DEMO_DEVICE['mac']}, ip {DEMO_DEVICE['ip']}):
    {site.customer_url()}

  Pay with any of these M-Pesa test numbers (the emulated customer answers in {site.decision_delay:g} s):
{phones}

  Pay from the M-Pesa menu instead (PayBill {site.settings()["MPESA_SHORTCODE"]}): buy with
  0700001037 (the prompt never reaches that phone), read the account code on the page, then:
    {site.pay_from_menu_command(10, "<account code>")}
  The page goes online by itself. Other accounts or amounts become sales by price or go to
  review: see {site.url}/admin/menu-payments

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
    try:
        check_port_free(host, port)
    except PortBusy as exc:
        raise click.ClickException(str(exc)) from exc
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
