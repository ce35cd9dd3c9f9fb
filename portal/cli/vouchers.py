"""``kibanda vouchers``: make, push, list, print and void voucher batches from a terminal."""
from __future__ import annotations

from pathlib import Path

import click

from .. import clients
from ..errors import KibandaError, RouterError
from ..timeutil import format_local, utcnow
from ..venue.branding import branding, logo_data_url
from ..venue.packages import find_package
from ..venue.printing import render_sheet
from ..venue.vouchers import (
    batch_codes, batch_counts, create_batch, get_batch, list_batches, push_batch, void_batch,
)
from .instance import BAD_INPUT, ROUTER_DOWN, open_instance


@click.group("vouchers")
def vouchers() -> None:
    """Voucher codes sold over the counter."""


def _gateway(settings: dict):
    return clients.router_gateway(settings)


def _print_counts(batch) -> None:

    counts = batch_counts(batch)
    click.echo(f"batch {batch.id}: {counts.total} codes, {counts.on_router} on the router, "
               f"{counts.new} not on the router yet, {counts.used} used, "
               f"{counts.expired} expired, {counts.void} void")


def _push(ctx: click.Context, settings: dict, batch) -> None:
    """Push synchronously; on a router problem say how to resume and exit non-zero."""

    gateway = _gateway(settings)
    try:
        push_batch(batch.id, gateway, utcnow(), actor="kibanda vouchers")
    except RouterError as exc:
        _print_counts(batch)
        click.echo(f"router: {exc.operator_message}", err=True)
        click.echo(f"the codes are saved; when the router is back run: "
                   f"kibanda vouchers push {batch.id}", err=True)
        ctx.exit(ROUTER_DOWN)
    finally:
        gateway.close()
    batch = type(batch).get_by_id(batch.id)
    _print_counts(batch)
    if batch.push_state != "done":
        click.echo(f"router: {batch.push_error}", err=True)
        click.echo(f"to try the rest again run: kibanda vouchers push {batch.id}", err=True)
        ctx.exit(ROUTER_DOWN)


def _write_sheet(ctx: click.Context, settings: dict, batch, path: str, layout: str) -> None:
    site = branding(settings)
    html = render_sheet(batch, list(batch_codes(batch)), layout=layout,
                        venue=site["name"], ssid=site["ssid"],
                        logo=logo_data_url(site, ctx.find_root().obj["instance"]),
                        dns_name=str(settings["HOTSPOT_DNS_NAME"]),
                        lang=str(settings.get("DEFAULT_LANGUAGE", "en")))
    Path(path).write_text(html, encoding="utf-8")
    click.echo(f"print sheet ({layout}) written to {path}")


@vouchers.command("create")
@click.option("--package", "package_name", required=True, help="Package name or id.")
@click.option("--count", required=True, help="How many codes (1 to 5,000).")
@click.option("--alphabet", type=click.Choice(["numeric", "alnum"]), default="numeric",
              show_default=True, help="Digits only, or letters and digits without look-alikes.")
@click.option("--length", default=8, show_default=True, help="Code length (6 to 10).")
@click.option("--prefix", default="", help="Up to 4 characters in front of every code.")
@click.option("--print", "print_file", default=None, metavar="FILE",
              help="Also write the printable HTML sheet to FILE.")
@click.option("--layout", type=click.Choice(["a4", "58mm", "80mm"]), default="a4",
              show_default=True, help="Sheet layout for --print.")
@click.option("--no-push", is_flag=True, help="Only make the codes; push them later.")
@click.pass_context
def create_command(ctx, package_name, count, alphabet, length, prefix, print_file, layout,
                   no_push) -> None:
    """Make a batch of codes and put them on the router."""

    settings = open_instance(ctx)
    try:
        package = find_package(package_name)
        batch = create_batch(package, count, utcnow(), "kibanda vouchers", alphabet=alphabet,
                             length=length, prefix=prefix)
    except KibandaError as exc:
        click.echo(f"error: {exc.message_for('en')}", err=True)
        ctx.exit(BAD_INPUT)
    click.echo(f"made batch {batch.id}: {batch.count} x {package.name_en} "
               f"(KES {package.price}), {alphabet} codes of {batch.length} characters")
    if print_file:
        _write_sheet(ctx, settings, batch, print_file, layout)
    if not no_push:
        _push(ctx, settings, batch)


@vouchers.command("push")
@click.argument("batch_id")
@click.pass_context
def push_command(ctx, batch_id) -> None:
    """Put a batch's remaining codes on the router (resumes a cut-off push)."""

    settings = open_instance(ctx)
    try:
        batch = get_batch(batch_id)
    except KibandaError as exc:
        click.echo(f"error: {exc.message_for('en')}", err=True)
        ctx.exit(BAD_INPUT)
    _push(ctx, settings, batch)


@vouchers.command("list")
@click.pass_context
def list_command(ctx) -> None:
    """The newest batches and what became of their codes."""

    open_instance(ctx)
    rows = list_batches()
    if not rows:
        click.echo("no voucher batches yet")
        return
    click.echo(f"{'batch':>5}  {'made (Nairobi)':<17} {'package':<16} {'KES':>6} {'codes':>5} "
               f"{'router':>6} {'used':>5} {'void':>5}  state")
    for batch, counts in rows:
        state = "void" if batch.voided_at else batch.push_state
        click.echo(f"{batch.id:>5}  {format_local(batch.created_at):<17} "
                   f"{batch.package.name_en[:16]:<16} {batch.package.price:>6} {counts.total:>5} "
                   f"{counts.on_router:>6} {counts.used + counts.expired:>5} {counts.void:>5}  {state}")


@vouchers.command("print")
@click.argument("batch_id")
@click.option("--out", "path", required=True, metavar="FILE", help="Where to write the sheet.")
@click.option("--layout", type=click.Choice(["a4", "58mm", "80mm"]), default="a4",
              show_default=True)
@click.pass_context
def print_command(ctx, batch_id, path, layout) -> None:
    """Write a batch's printable sheet again (the same codes every time)."""

    settings = open_instance(ctx)
    try:
        batch = get_batch(batch_id)
    except KibandaError as exc:
        click.echo(f"error: {exc.message_for('en')}", err=True)
        ctx.exit(BAD_INPUT)
    _write_sheet(ctx, settings, batch, path, layout)


@vouchers.command("void")
@click.argument("batch_id")
@click.pass_context
def void_command(ctx, batch_id) -> None:
    """Remove a batch's unused codes from the router and void them."""

    settings = open_instance(ctx)
    gateway = _gateway(settings)
    try:
        count = void_batch(batch_id, gateway, utcnow(), actor="kibanda vouchers")
    except RouterError as exc:
        click.echo(f"router: {exc.operator_message}; nothing was voided, try again", err=True)
        ctx.exit(ROUTER_DOWN)
    except KibandaError as exc:
        click.echo(f"error: {exc.message_for('en')}", err=True)
        ctx.exit(BAD_INPUT)
    finally:
        gateway.close()
    click.echo(f"batch {batch_id}: {count} unused codes voided and removed from the router")
