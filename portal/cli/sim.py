"""``kibanda sim router|mpesa``: the emulators, for tests and demos."""
from __future__ import annotations

import click

from ..sim.daraja import mpesa_command
from ..sim.routeros import router_command


@click.group("sim")
def sim() -> None:
    """Emulators of the router and of M-Pesa, for tests and demos."""


sim.add_command(router_command, "router")
sim.add_command(mpesa_command, "mpesa")
