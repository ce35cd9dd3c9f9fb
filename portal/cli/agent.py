"""``kibanda agent``: run the site's worker until Ctrl-C or SIGTERM (or one cycle)."""
from __future__ import annotations

import logging
import signal
import threading

import click

from agent.worker import Agent

from ..timeutil import utcnow
from .instance import open_instance
from .systemd import sd_notify


@click.command("agent")
@click.option("--interval", default=2.0, show_default=True, type=float,
              help="Seconds between cycles.")
@click.option("--once", is_flag=True, help="Run a single cycle and exit (1 if a step failed).")
@click.pass_context
def agent_command(ctx: click.Context, interval: float, once: bool) -> None:
    """Settle payments, provision the router and expire access until Ctrl-C or SIGTERM."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = open_instance(ctx)
    agent = Agent(settings)
    if once:
        # A quiet site touches neither link in a cycle: --once proves both can be reached.
        agent.steps.insert(0, ("router", lambda _now: int(bool(agent.gateway.version()))))
        if agent.mpesa.problems() == []:
            agent.steps.insert(1, ("mpesa", lambda _now: agent.mpesa.check_credentials() or 1))
        try:
            report = agent.loop(utcnow())
        finally:
            agent.close()
        for name, count in report.done.items():
            click.echo(f"{name}: {count}")
        for name, error in report.failed.items():
            click.echo(f"{name}: FAILED {error}", err=True)
        ctx.exit(0 if report.ok else 1)
    def clock():
        # Called at every cycle: a cycle stuck beyond every timeout stops the pings, and
        # systemd (WatchdogSec) restarts the agent.
        sd_notify("WATCHDOG=1")
        return utcnow()

    stop = threading.Event()
    sd_notify("READY=1")
    # Only set the flag: the cycle in progress finishes and the loop exits at its wait.
    previous = {sig: signal.signal(sig, lambda *_: stop.set())
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        agent.run(stop, interval=interval, clock=clock)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
