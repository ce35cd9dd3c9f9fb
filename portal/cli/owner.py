"""``kibanda owner reset-password``: a forgotten owner password, recovered at the console.

Whoever can type on the appliance's console (or ``docker exec`` into it) already holds the
instance folder and its keys, so this needs no old password. Nothing is default: the new
password is generated and printed once, or typed (hidden) with ``--ask``.
"""
from __future__ import annotations

import sys

import click

from ..errors import ValidationError
from ..models import AdminUser
from ..timeutil import utcnow
from ..venue.accounts import reset_password
from .instance import BAD_INPUT, open_instance


@click.group("owner")
def owner_group() -> None:
    """The owner's account, from the appliance's console."""


@owner_group.command("reset-password")
@click.option("--user", "username", default=None,
              help="The owner account (needed only when there are several owners).")
@click.option("--ask", is_flag=True,
              help="Type the new password (hidden) instead of getting a generated one.")
@click.pass_context
def reset_password_command(ctx: click.Context, username: str | None, ask: bool) -> None:
    """Give an owner account a new password and sign it out everywhere."""
    open_instance(ctx)
    owners = list(AdminUser.select().where(AdminUser.role == AdminUser.OWNER)
                  .order_by(AdminUser.username))
    if username is not None:
        owners = [user for user in owners if user.username == username]
    if not owners:
        click.echo(f"error: no owner account{f' named {username}' if username else ''}; "
                   "kibanda init creates the first one", err=True)
        ctx.exit(BAD_INPUT)
    if len(owners) > 1:
        names = ", ".join(user.username for user in owners)
        click.echo(f"error: there are several owners ({names}): say which with --user NAME",
                   err=True)
        ctx.exit(BAD_INPUT)
    [owner] = owners
    password = None
    if ask:
        if sys.stdin is None or not sys.stdin.isatty():
            click.echo("error: --ask needs a terminal to type the password on", err=True)
            ctx.exit(BAD_INPUT)
        password = click.prompt(f"New password for {owner.username}", hide_input=True,
                                confirmation_prompt=True)
    try:
        password = reset_password(owner.id, "kibanda owner reset-password", "console",
                                  utcnow(), password=password, owner=True)
    except ValidationError as exc:
        click.echo(f"error: {exc.message_for('en')}", err=True)
        ctx.exit(BAD_INPUT)
    if ask:
        click.echo(f"owner account {owner.username}: password changed; every session of "
                   "it is signed out")
    else:
        click.echo(f"owner account: {owner.username}  password: {password}")
        click.echo("write this password down now: it is not shown again; every session of "
                   "this account is signed out")
