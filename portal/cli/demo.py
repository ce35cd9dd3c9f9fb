"""``kibanda demo``: the whole appliance on one laptop, against the emulators (:mod:`.demo_site`)."""
from __future__ import annotations

import fcntl
import logging
import os
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
#: Held (flock) by the running demo for its whole life, with its pid inside: a second demo
#: never wipes the folder of a running one.
DEMO_LOCK = ".kibanda-demo.lock"


def claim_instance(path: Path):
    """Lock the demo's instance folder and give it a fresh start; returns the open lock file
    (keep it open while the demo runs: closing it, or the process ending, frees the folder).

    Refuses a folder the demo did not make, and a folder a running demo holds.
    """
    if path.exists() and not (path / DEMO_MARKER).exists() and any(path.iterdir()):
        raise click.ClickException(
            f"{path} exists and was not made by kibanda demo; choose another --dir")
    path.mkdir(parents=True, exist_ok=True)
    lock = open(path / DEMO_LOCK, "a+", encoding="utf-8")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        lock.seek(0)
        pid = lock.read().strip() or "?"
        lock.close()
        raise click.ClickException(
            f"{path} is in use by a kibanda demo that is still running (pid {pid}). Stop "
            f"that demo first (Ctrl-C in its window), or start another one beside it in its "
            f"own folder: kibanda demo --port PORT --dir OTHER-FOLDER") from None
    lock.seek(0)
    lock.truncate()
    lock.write(f"{os.getpid()}\n")
    lock.flush()
    for entry in path.iterdir():
        if entry.name == DEMO_LOCK:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    (path / DEMO_MARKER).write_text("made by kibanda demo: wiped and recreated on every run\n")
    return lock


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
  Emulated SMS (Africa's Talking): {site.sms.url}; receipts and their delivery show on
    {site.url}/admin/sms

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
        raise click.ClickException(
            f"{exc}. Stop it, or run a second demo beside it on another port and in its "
            f"own folder: kibanda demo --port {port + 1} --dir {folder}-{port + 1}") from exc
    path = Path(folder).resolve()
    lock = claim_instance(path)
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
        lock.close()
    click.echo("demo stopped")
