"""``kibanda check``: the technician's doctor. One line per check, OK or what is wrong and
how to fix it; exit status 1 when any check failed. The checks are in
``portal/venue/site_check.py``.
"""
from __future__ import annotations

import click

from .. import clients
from ..venue.branding import branding
from ..venue.site_check import SiteChecks
from .instance import open_instance


@click.command("check")
@click.pass_context
def check_command(ctx: click.Context) -> None:
    """Check the router, the hotspot, the pages, the clock, M-Pesa and upstream."""
    settings = open_instance(ctx)
    gateway = clients.router_gateway(settings)
    mpesa = clients.mpesa_client(settings)
    try:
        lines = SiteChecks(settings, gateway, mpesa).run(branding(settings))
    finally:
        gateway.close()
        mpesa.close()
    for line in lines:
        click.echo(line.text())
    failed = [line for line in lines if not line.ok]
    click.echo(f"{len(lines) - len(failed)} of {len(lines)} checks OK")
    ctx.exit(1 if failed else 0)
