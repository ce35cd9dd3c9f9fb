"""``kibanda init``: the instance folder, its keys, the database and the first owner."""
from __future__ import annotations

import sys

import click

from ..config import CONFIG_FILE, encrypt_config_secrets, ensure_instance
from ..venue.accounts import create_first_owner, owner_exists
from .instance import open_instance


@click.command("init")
@click.option("--owner", "owner_name", default="owner", show_default=True,
              help="Username of the first owner account.")
@click.option("--password", "owner_password", default=None,
              help="Password for the first owner (default: asked, or generated when no terminal).")
@click.pass_context
def init_command(ctx: click.Context, owner_name: str, owner_password: str | None) -> None:
    """Create the instance folder, its keys (mode 0600), the database and the first owner.

    Safe to run again: it also encrypts secrets typed into kibanda.toml in plain text.
    """
    path = ctx.find_root().obj["instance"]
    created = ensure_instance(path)
    # Secrets a technician typed into kibanda.toml in plain text: encrypted with fernet.key.
    encrypted = encrypt_config_secrets(path)
    settings = open_instance(ctx)
    for name in created:
        click.echo(f"created {path / name}")
    if not created:
        click.echo(f"instance {path}: keys already present, left unchanged")
    if encrypted:
        click.echo(f"{CONFIG_FILE}: encrypted {', '.join(encrypted)} with fernet.key")
    click.echo(f"database {settings['DATABASE']}")
    # Never prompt without a terminal, so scripts and containers never hang.
    interactive = sys.stdin is not None and sys.stdin.isatty()
    if owner_password is None and interactive and not owner_exists():
        owner_password = click.prompt("Password for the owner account", hide_input=True,
                                      confirmation_prompt=True)
    result = create_first_owner(owner_name, owner_password)
    if result is None:
        click.echo("an owner account already exists; no account created")
    else:
        username, generated = result
        if generated:
            click.echo(f"owner account: {username}  password: {generated}")
            click.echo("write this password down now: it is not shown again")
        else:
            click.echo(f"owner account {username} created")
