"""``kibanda hub``: run the operator's hub, make enrollment tokens, add operators."""
from __future__ import annotations

import click

from .serve import PortalServer, gunicorn_options


class HubServer(PortalServer):
    """Gunicorn building the hub app in each worker (each its own database connection)."""

    def load(self):
        """Build the hub's WSGI app (called in each worker)."""
        from hub import create_app

        return create_app(self.overrides, instance=self.instance)


def _open_hub(ctx: click.Context):
    """Create the hub's folder, open its database and schema; returns the folder."""
    from hub.config import ensure_hub_instance, hub_instance_path, load_hub_settings
    from hub.models import create_schema, init_db

    path = hub_instance_path(ctx.find_object(dict).get("hub_instance"))
    ensure_hub_instance(path)
    settings = load_hub_settings(path)
    init_db(str(settings["HUB_DATABASE_URL"] or ""), str(path))
    create_schema()
    return path


@click.group("hub", invoke_without_command=True)
@click.option("--hub-instance", envvar="KIBANDA_HUB_INSTANCE", default=None,
              help="The hub's folder (default ./hub-instance, or KIBANDA_HUB_INSTANCE).")
@click.option("--host", default="0.0.0.0", show_default=True, help="Address to listen on.")
@click.option("--port", default=8090, show_default=True, type=int, help="Port to listen on.")
@click.option("--workers", default=2, show_default=True, type=int, help="Worker processes.")
@click.option("--threads", default=8, show_default=True, type=int, help="Threads per worker.")
@click.pass_context
def hub_group(ctx: click.Context, hub_instance, host: str, port: int, workers: int,
              threads: int) -> None:
    """Run the operator's hub under gunicorn (or: token, operator)."""
    ctx.ensure_object(dict)
    ctx.obj["hub_instance"] = hub_instance
    if ctx.invoked_subcommand is not None:
        return
    path = _open_hub(ctx)
    click.echo(f"hub folder {path}, listening on {host}:{port}")
    options = gunicorn_options(host, port, workers, threads, access_log=False)
    options["proc_name"] = "kibanda-hub"
    HubServer(str(path), options, overrides={"HUB_KEEP_OPEN": True}).run()


@hub_group.command("token")
@click.option("--site", "slug", required=True, help="The site's id: a-z, 0-9 and '-'.")
@click.option("--name", default="", help="The site's name as the operator sees it.")
@click.pass_context
def token_command(ctx: click.Context, slug: str, name: str) -> None:
    """Print a one-time enrollment token for a site (valid 7 days)."""
    from hub.errors import HubError
    from hub.ingest import make_token
    from hub.models import db

    _open_hub(ctx)
    try:
        with db.connection_context():
            token = make_token(slug.strip(), name.strip())
    except HubError as exc:
        raise click.BadParameter(exc.message, param_hint="--site") from exc
    click.echo(token)
    click.echo(f"On the site: kibanda enroll --hub <this hub's URL> --token {token}", err=True)


@hub_group.group("operator")
def operator_group() -> None:
    """Operator accounts for the hub's pages."""


@operator_group.command("add")
@click.argument("email")
@click.pass_context
def operator_add(ctx: click.Context, email: str) -> None:
    """Make an operator account and print its generated password (shown once)."""
    from hub.errors import HubError
    from hub.models import db
    from hub.operators import add_operator

    _open_hub(ctx)
    try:
        with db.connection_context():
            operator, password = add_operator(email)
    except HubError as exc:
        raise click.BadParameter(exc.message, param_hint="EMAIL") from exc
    click.echo(f"operator {operator.email}  password: {password}")
    click.echo("write this password down now: it is not shown again")
