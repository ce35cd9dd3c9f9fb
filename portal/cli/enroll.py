"""``kibanda enroll --hub URL --token T``: register this site's key with the operator's hub."""
from __future__ import annotations

import click
import requests

from .. import signing, upstream
from ..config import write_config_values
from ..models import db
from .instance import BAD_INPUT, open_instance


@click.command("enroll")
@click.option("--hub", "hub_url", required=True, help="The hub's address, e.g. https://hub.example.co.ke")
@click.option("--token", required=True, help="The one-time token from `kibanda hub token`.")
@click.pass_context
def enroll_command(ctx: click.Context, hub_url: str, token: str) -> None:
    """Create the site key (0600, if none) and register it with the hub."""
    settings = open_instance(ctx)
    path = ctx.find_root().obj["instance"]
    hub_url = hub_url.strip().rstrip("/")
    if not hub_url.startswith(("http://", "https://")):
        raise click.BadParameter("give the hub's http:// or https:// address", param_hint="--hub")
    key = signing.load_or_create_key(path / signing.SITE_KEY_FILE)
    body = {"token": token.strip(), "public_key": signing.public_key_b64(key),
            "name": str(settings.get("SITE_NAME") or "")[:120]}
    try:
        response = requests.post(f"{hub_url}/v1/enroll", json=body, timeout=(5, 30))
    except requests.RequestException as exc:
        click.echo(f"cannot reach the hub at {hub_url}: {exc}", err=True)
        ctx.exit(1)
    try:
        answer = response.json()
    except ValueError:
        answer = {}
    if response.status_code != 201 or not isinstance(answer, dict):
        click.echo(f"the hub refused: {answer.get('error') or response.status_code}"
                   if isinstance(answer, dict) else f"the hub refused: {response.status_code}",
                   err=True)
        ctx.exit(BAD_INPUT if 400 <= response.status_code < 500 else 1)
    site, key_id = str(answer.get("site", "")), str(answer.get("key_id", ""))
    if key_id != signing.key_id(signing.public_bytes(key)):
        click.echo("the hub answered with another key id: not saved", err=True)
        ctx.exit(1)
    write_config_values(path, {"UPSTREAM_URL": hub_url, "SITE_ID": site,
                               "UPSTREAM_KEY_ID": key_id})
    with db.connection_context():
        # A refusal that stopped the queue is over: the next agent cycle sends again.
        upstream.write_state(**{upstream.STOPPED: None, upstream.FAILURES: None,
                                upstream.RETRY_AT: None, upstream.LAST_ERROR: None})
    click.echo(f"enrolled as {site} (key {key_id}) with {hub_url}")
    click.echo("restart the agent (kibanda agent) so it starts sending")
