"""The ``kibanda`` command: one entry point for the appliance, its tools and emulators.

Each command's module is imported only when that command runs: ``kibanda agent`` and
``kibanda run`` then never load gunicorn, Flask, the emulators or the printing code they
do not use (each process of a router-sized appliance pays for every module it imports).
"""
from __future__ import annotations

import importlib

import click

from ..config import instance_path

#: command name -> "module:attribute" under portal.cli
COMMANDS = {
    "init": "init:init_command", "serve": "serve:serve_command", "agent": "agent:agent_command",
    "demo": "demo:demo_command", "packages": "packages:packages_group",
    "vouchers": "vouchers:vouchers", "sim": "sim:sim",
    "provision": "provision:provision_command", "check": "check:check_command",
    "run": "run:run_command", "owner": "owner:owner_group",
    "mpesa": "mpesa:mpesa_group", "enroll": "enroll:enroll_command", "hub": "hub:hub_group",
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Every command name, for --help."""
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        """Import the command's module when it is asked for."""
        if name in COMMANDS and name not in self.commands:
            module, attribute = COMMANDS[name].split(":")
            self.add_command(getattr(importlib.import_module(f"{__package__}.{module}"),
                                     attribute), name)
        return super().get_command(ctx, name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--instance", envvar="KIBANDA_INSTANCE", default=None,
              help="Instance folder (default ./instance, or KIBANDA_INSTANCE).")
@click.pass_context
def main(ctx: click.Context, instance: str | None) -> None:
    """Kibanda: WiFi hotspot sales for MikroTik sites."""
    ctx.ensure_object(dict)
    ctx.obj["instance"] = instance_path(instance)
