"""What every ``kibanda`` command that works on a site needs: its instance, opened."""
from __future__ import annotations

from pathlib import Path

import click

from ..config import ensure_instance, instance_lock, load_settings
from ..models import create_schema, init_db

#: Exit status for input a command refuses (the same as click's usage errors).
BAD_INPUT = 2
#: Exit status when the work is saved but the router could not take it (resume later).
ROUTER_DOWN = 3


def open_instance(ctx: click.Context) -> dict:
    """Create the instance if needed, open its database and return its settings."""
    return prepare_instance(ctx.find_root().obj["instance"])


def prepare_instance(path: Path) -> dict:
    """Create the instance's keys and schema (one process at a time: the portal and the
    agent start together), open its database and return its settings."""
    with instance_lock(path):
        ensure_instance(path)
        settings = load_settings(path)
        init_db(settings["DATABASE"])
        create_schema()
    return settings
