"""``kibanda sim router|mpesa|sms``: run the RouterOS, Daraja or Africa's Talking SMS
emulator in the foreground.

The emulators themselves (:mod:`portal.sim`) are plain classes that tests start
in-process; this is all they have to do with click.
"""
from __future__ import annotations

import signal
import threading

import click

from ..sim.daraja import DarajaSim
from ..sim.daraja_rules import SANDBOX_PASSKEY, SANDBOX_SHORTCODE, TEST_NUMBER_TABLE
from ..sim.routeros import RouterSim
from ..sim.sms import MESSAGING_PATH, SmsSim
from ..sim.sms_rules import SUFFIX_REFUSALS, STATUS_NAMES


#: Every emulator's --control-port option.
CONTROL_PORT = click.option(
    "--control-port", type=int, default=None,
    help="Serve the HTTP control interface on this port (0: any free port); off by default. "
         "See docs/emulators.md.")


@click.group("sim")
def sim() -> None:
    """Emulators of the router, of M-Pesa and of Africa's Talking SMS, for tests and demos."""


@sim.command("router")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8728, show_default=True, type=int, help="API port.")
@click.option("--user", default="admin", show_default=True, help="API user name.")
@click.option("--password", default="", help="API user password (default empty).")
@click.option("--version", "version", default="7.16", show_default=True,
              help="RouterOS version to emulate, e.g. 6.49 or 7.18.")
@click.option("--latency-ms", default=0.0, type=float, help="Delay before every reply sentence.")
@click.option("--state", "state_file", type=click.Path(dir_okay=False), default=None,
              help="JSON file to load the router state from and save it to.")
@click.option("--factory-defaults", is_flag=True, help="Start as a reset router: no bridge, no hotspot.")
@CONTROL_PORT
def router_command(host, port, user, password, version, latency_ms, state_file, factory_defaults,
                   control_port):
    """Run the RouterOS API emulator until Ctrl-C or SIGTERM."""
    sim = RouterSim(host=host, port=port, user=user, password=password, version=version,
                    latency_ms=latency_ms, state_file=state_file,
                    factory_defaults=factory_defaults, clock="real", control_port=control_port)
    _serve(sim, lambda: [f"RouterOS {version} API emulator listening on {host}:{sim.port} "
                         f"(user {user!r}); Ctrl-C to stop", *_control_line(sim)])


@sim.command("mpesa")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8091, show_default=True, type=int, help="HTTP port.")
@click.option("--consumer-key", default="kibanda-demo-key", show_default=True)
@click.option("--consumer-secret", default="kibanda-demo-secret", show_default=True)
@click.option("--shortcode", default=SANDBOX_SHORTCODE, show_default=True,
              help="PayBill / store number (the Daraja sandbox's by default).")
@click.option("--passkey", default=SANDBOX_PASSKEY, help="Passkey (the sandbox's by default).")
@click.option("--decision-delay", default=2.0, show_default=True, type=float,
              help="Seconds from push to outcome (the customer 'typing the PIN').")
@click.option("--callback-delay", default=0.0, show_default=True, type=float,
              help="Extra seconds before the callback is POSTed.")
@CONTROL_PORT
@click.option("--sandbox", is_flag=True,
              help="Refuse C2B URL registration, as the real Daraja sandbox does.")
def mpesa_command(host, port, consumer_key, consumer_secret, shortcode, passkey,
                  decision_delay, callback_delay, control_port, sandbox):
    """Run the Daraja (M-Pesa) emulator until Ctrl-C or SIGTERM."""
    sim = DarajaSim(host=host, port=port, consumer_key=consumer_key,
                    consumer_secret=consumer_secret, shortcode=shortcode, passkey=passkey,
                    decision_delay=decision_delay, callback_delay=callback_delay,
                    control_port=control_port, sandbox=sandbox)
    _serve(sim, lambda: [
        f"Daraja emulator at {sim.base_url} (shortcode {shortcode}, consumer key "
        f"{consumer_key!r}); Ctrl-C to stop",
        f"settings: KIBANDA_MPESA_BASE_URL={sim.base_url}", "test numbers:", TEST_NUMBER_TABLE,
        "same phone + same amount again within 2 minutes: ResultCode 17", *_control_line(sim)])


@sim.command("sms")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8092, show_default=True, type=int, help="HTTP port.")
@click.option("--username", default="sandbox", show_default=True,
              help="The account's username (the form field username).")
@click.option("--api-key", default="kibanda-demo-sms-key", show_default=True,
              help="The apiKey header every send must carry.")
@click.option("--sender-id", "sender_ids", multiple=True,
              help="A registered sender id (repeatable; default KIBANDA). Any other 'from' "
                   "gets 402 InvalidSenderId.")
@click.option("--delivery-report-url", default=None,
              help="Where delivery reports are POSTed (form fields, as Africa's Talking).")
@click.option("--delivery-delay", default=0.2, show_default=True, type=float,
              help="Seconds from acceptance to the 'Success' delivery report.")
@click.option("--balance", default=1000.0, show_default=True, type=float,
              help="Account balance in KES (0.80 per SMS part).")
@CONTROL_PORT
def sms_command(host, port, username, api_key, sender_ids, delivery_report_url,
                delivery_delay, balance, control_port):
    """Run the Africa's Talking SMS emulator until Ctrl-C or SIGTERM."""
    sim = SmsSim(host=host, port=port, username=username, api_key=api_key,
                 sender_ids=sender_ids or ("KIBANDA",), balance_kes=balance,
                 delivery_report_url=delivery_report_url, delivery_delay=delivery_delay,
                 control_port=control_port)
    refusals = ", ".join(f"...{code} {STATUS_NAMES[code]}" for code in SUFFIX_REFUSALS)
    _serve(sim, lambda: [
        f"Africa's Talking SMS emulator at {sim.url} (username {username!r}, sender ids "
        f"{', '.join(sim.sender_ids)}); Ctrl-C to stop",
        f"send: POST {sim.url}{MESSAGING_PATH} with the --api-key as header apiKey",
        f"delivery reports: {delivery_report_url or 'off (no --delivery-report-url)'}",
        f"numbers ending in: {refusals}", *_control_line(sim)])


def _control_line(sim) -> list[str]:
    """The banner line naming the control interface, when it is on."""
    if sim.control_url is None:
        return []
    return [f"control interface at {sim.control_url} (HTTP, JSON; see docs/emulators.md)"]


def _serve(sim, banner) -> None:
    """Start ``sim``, print ``banner()`` (its lines need the bound port), run until
    Ctrl-C or SIGTERM (the handler only sets a flag), then stop it."""
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    sim.start()
    for line in banner():
        click.echo(line)
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        click.echo("stopping")
    finally:
        sim.stop()
        signal.signal(signal.SIGTERM, previous)
