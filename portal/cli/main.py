"""The ``kibanda`` command: one entry point for the appliance, its tools and emulators."""
from __future__ import annotations

import click

from ..config import instance_path
from . import agent, demo, enroll, hub, init, packages, serve, sim, vouchers


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--instance", envvar="KIBANDA_INSTANCE", default=None,
              help="Instance folder (default ./instance, or KIBANDA_INSTANCE).")
@click.pass_context
def main(ctx: click.Context, instance: str | None) -> None:
    """Kibanda: WiFi hotspot sales for MikroTik sites."""
    ctx.ensure_object(dict)
    ctx.obj["instance"] = instance_path(instance)


for _command in (init.init_command, serve.serve_command, agent.agent_command,
                 demo.demo_command, packages.packages_group, vouchers.vouchers, sim.sim,
                 enroll.enroll_command, hub.hub_group):
    main.add_command(_command)
