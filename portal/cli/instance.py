"""What every ``kibanda`` command that works on a site needs: its instance, opened."""
from __future__ import annotations

import click

from ..config import ensure_instance, load_settings
from ..models import create_schema, init_db

#: Exit status for input a command refuses (the same as click's usage errors).
BAD_INPUT = 2
#: Exit status when the work is saved but the router could not take it (resume later).
ROUTER_DOWN = 3


def open_instance(ctx: click.Context) -> dict:
    """Create the instance if needed, open its database and return its settings."""
    path = ctx.find_root().obj["instance"]
    ensure_instance(path)
    settings = load_settings(path)
    init_db(settings["DATABASE"])
    create_schema()
    return settings
