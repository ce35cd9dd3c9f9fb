"""``kibanda mpesa``: one-time set-up with Safaricom (C2B URLs, Pull Transactions)."""
from __future__ import annotations

import click

from .. import clients
from ..errors import KibandaError
from ..ledger import c2b, reconcile
from ..models import db
from ..timeutil import utcnow
from .instance import BAD_INPUT, open_instance

#: Exit status when Daraja refused or could not be reached.
MPESA_REFUSED = 4


@click.group("mpesa")
def mpesa_group() -> None:
    """Set-up with M-Pesa (Daraja)."""


@mpesa_group.command("register-urls")
@click.option("--response-type", type=click.Choice(["Completed", "Cancelled"]),
              default="Completed", show_default=True,
              help="What M-Pesa does when the validation URL does not answer.")
@click.pass_context
def register_urls(ctx: click.Context, response_type: str) -> None:
    """Register this site's C2B confirmation and validation URLs (v2, once)."""
    settings = open_instance(ctx)
    confirmation, validation = c2b.c2b_urls(settings)
    if not confirmation.startswith(("http://", "https://")):
        click.echo("error: CALLBACK_BASE_URL (the site's public address) is not set", err=True)
        ctx.exit(BAD_INPUT)
    try:
        with db.connection_context(), clients.mpesa_client(settings) as mpesa:
            answer = mpesa.register_c2b_urls(confirmation, validation, response_type)
    except KibandaError as exc:
        click.echo(f"error: {exc.operator_message}", err=True)
        ctx.exit(MPESA_REFUSED)
    shown = confirmation.rsplit("/", 1)[0] + "/***"
    click.echo(f"registered: confirmations go to {shown} "
               f"({answer.get('ResponseDescription') or 'accepted'})")


@mpesa_group.command("pull")
@click.pass_context
def pull_now(ctx: click.Context) -> None:
    """Ask Pull Transactions now (registering first if needed) and settle what it lists."""
    settings = open_instance(ctx)
    if not settings.get("MPESA_PULL_NOMINATED_NUMBER"):
        click.echo("error: set MPESA_PULL_NOMINATED_NUMBER (the number nominated for the "
                   "shortcode on the M-Pesa portal) first", err=True)
        ctx.exit(BAD_INPUT)
    try:
        with db.connection_context(), clients.mpesa_client(settings) as mpesa:
            read = reconcile.pull(mpesa, settings, utcnow(), force=True)
    except KibandaError as exc:
        click.echo(f"error: {exc.operator_message}", err=True)
        ctx.exit(MPESA_REFUSED)
    click.echo(f"Pull Transactions: {read} payments read and settled")
