"""The ``kibanda`` command: one entry point for the appliance, its tools and emulators."""
from __future__ import annotations

import sys

import click

from .config import ensure_instance, instance_path, load_settings


class LazyGroup(click.Group):
    """A group whose subcommands live beside the parts they drive, imported when used."""

    def __init__(self, *args, lazy: dict[str, str] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy or {})

    def list_commands(self, ctx):
        return sorted(set(super().list_commands(ctx)) | set(self.lazy))

    def get_command(self, ctx, name):
        if name in self.lazy:
            import importlib

            module, _, attr = self.lazy[name].partition(":")
            return getattr(importlib.import_module(module), attr)
        return super().get_command(ctx, name)


#: Subcommands defined in other modules: name -> "module:attribute".
LAZY_COMMANDS = {
    "agent": "agent.worker:agent_command",
    "demo": "portal.demo:demo_command",
    "packages": "portal.packages_cli:packages_group",
    "serve": "portal.serve:serve_command",
    "vouchers": "portal.vouchers_cli:vouchers",
}
SIM_COMMANDS = {
    "router": "portal.sim.commands:router_command",
    "mpesa": "portal.sim.commands:mpesa_command",
}


@click.group(cls=LazyGroup, lazy=LAZY_COMMANDS,
             context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--instance", envvar="KIBANDA_INSTANCE", default=None,
              help="Instance folder (default ./instance, or KIBANDA_INSTANCE).")
@click.pass_context
def main(ctx: click.Context, instance: str | None) -> None:
    """Kibanda: WiFi hotspot sales for MikroTik sites."""
    ctx.ensure_object(dict)
    ctx.obj["instance"] = instance_path(instance)


def open_instance(ctx: click.Context) -> dict:
    """Create the instance if needed, open its database and return its settings."""
    from .models import create_schema, init_db

    path = ctx.obj["instance"]
    ensure_instance(path)
    settings = load_settings(path)
    init_db(settings["DATABASE"])
    create_schema()
    return settings


@main.command()
@click.option("--owner", "owner_name", default="owner", show_default=True,
              help="Username of the first owner account.")
@click.option("--password", "owner_password", default=None,
              help="Password for the first owner (default: asked, or generated when no terminal).")
@click.pass_context
def init(ctx: click.Context, owner_name: str, owner_password: str | None) -> None:
    """Create the instance folder, its keys (mode 0600), the database and the first owner."""
    from .accounts import create_first_owner

    path = ctx.obj["instance"]
    created = ensure_instance(path)
    settings = open_instance(ctx)
    for name in created:
        click.echo(f"created {path / name}")
    if not created:
        click.echo(f"instance {path}: keys already present, left unchanged")
    click.echo(f"database {settings['DATABASE']}")
    interactive = sys.stdin is not None and sys.stdin.isatty()
    result = create_first_owner(owner_name, owner_password, interactive=interactive)
    if result is None:
        click.echo("an owner account already exists; no account created")
    else:
        username, generated = result
        if generated:
            click.echo(f"owner account: {username}  password: {generated}")
            click.echo("write this password down now: it is not shown again")
        else:
            click.echo(f"owner account {username} created")


@main.group(cls=LazyGroup, lazy=SIM_COMMANDS)
def sim() -> None:
    """Emulators of the router and of M-Pesa, for tests and demos."""
