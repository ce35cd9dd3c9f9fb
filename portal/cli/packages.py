"""``kibanda packages``: add, list, edit, retire and sell again the packages a site sells."""
from __future__ import annotations

import click

from .. import clients
from ..errors import NotFound, ValidationError
from ..ledger import windows
from ..models import Package
from ..timeutil import format_duration, format_local
from ..venue.packages import (
    cap_words, create_package, describe, find_package, set_package_active, sync_profile,
    update_package,
)
from .instance import BAD_INPUT, open_instance


@click.group("packages")
def packages_group() -> None:
    """The WiFi packages this site sells."""


@packages_group.command("add")
@click.option("--name", required=True, help="English name, e.g. '1 hour'.")
@click.option("--price", required=True, help="Price in whole Kenya shillings, e.g. 20.")
@click.option("--validity", required=True, help="How long access lasts: 30m, 1h, 1d, 7d, 30d.")
@click.option("--rate", default="", help="Speed limit upload/download, e.g. 2M/5M (default: none).")
@click.option("--devices", default="1", show_default=True, help="Devices that may share it.")
@click.option("--data-cap", default="", help="Data cap, e.g. 500MB or 2GB (default: none).")
@click.option("--slow-speed", default="", help="Speed after the data cap instead of cutting "
                                               "off, e.g. 256k/256k (needs --data-cap).")
@click.option("--name-sw", default="", help="Swahili name, e.g. 'Saa 1'.")
@click.option("--sort-order", default=0, type=int, help="Position on the package page.")
@click.option("--days", default="", help="Time window days, Nairobi time: sat,sun, weekend, "
                                         "mon-fri (default: every day).")
@click.option("--hours", default="", help="Time window hours, e.g. 22:00-06:00 (default: all day).")
@click.option("--outside", type=click.Choice(windows.SALE_RULES), default=windows.REFUSE,
              show_default=True, help="A purchase outside the window: refuse it, or sell it "
                                      "and wait for the next opening.")
@click.pass_context
def add_command(ctx: click.Context, name, price, validity, rate, devices, data_cap, slow_speed,
                name_sw, sort_order, days, hours, outside) -> None:
    """Add a package (its router profile is created with the first sale)."""
    settings = open_instance(ctx)
    try:
        package = create_package(actor="kibanda packages", name_en=name, name_sw=name_sw,
                                 price=price, validity=validity, rate_limit=rate,
                                 devices=devices, data_cap=data_cap, sort_order=sort_order,
                                 fair_use_rate=slow_speed, days=days, hours=hours, outside=outside)
    except ValidationError as exc:
        click.echo(f"error: {exc.message_for('en')}", err=True)
        ctx.exit(BAD_INPUT)
    click.echo(f"added package {describe(package)} (router profile {package.profile_name})")
    _sync_if_configured(settings, package)


def _sync_if_configured(settings, package) -> None:
    # A site whose router link is configured gets the profile now, so the admin pages
    # show it as on the router; otherwise the first sale creates it.
    if not settings.get("ROUTER_PASSWORD"):
        return
    with clients.router_gateway(settings) as gateway:
        if sync_profile(package, gateway):
            click.echo(f"router profile {package.profile_name} is on the router")
        else:
            click.echo(f"the router did not take the profile yet ({package.router_error}); "
                       "it is created with the first sale", err=True)


def _package_or_exit(ctx: click.Context, name_or_id: str):
    try:
        return find_package(name_or_id)
    except NotFound as exc:
        click.echo(f"error: {exc.message_for('en')} See: kibanda packages list --all", err=True)
        ctx.exit(BAD_INPUT)


@packages_group.command("edit")
@click.argument("package")
@click.option("--name", default=None, help="New English name.")
@click.option("--name-sw", default=None, help="New Swahili name.")
@click.option("--price", default=None, help="New price in whole Kenya shillings.")
@click.option("--validity", default=None, help="New validity: 30m, 1h, 1d, 7d, 30d.")
@click.option("--rate", default=None, help="New speed limit upload/download, e.g. 2M/5M "
                                           "('' for none).")
@click.option("--devices", default=None, help="New number of devices that may share it.")
@click.option("--data-cap", default=None, help="New data cap, e.g. 2GB ('' for none).")
@click.option("--slow-speed", default=None, help="New speed after the data cap, e.g. "
                                                 "256k/256k ('' to cut off at the cap).")
@click.option("--sort-order", default=None, help="New position on the package page.")
@click.option("--days", default=None, help="New window days: sat,sun, weekend, mon-fri "
                                           "('' for every day).")
@click.option("--hours", default=None, help="New window hours, e.g. 22:00-06:00 ('' for all day).")
@click.option("--outside", type=click.Choice(windows.SALE_RULES), default=None,
              help="A purchase outside the window: refuse, or wait for the next opening.")
@click.pass_context
def edit_command(ctx: click.Context, package, name, name_sw, price, validity, rate, devices,
                 data_cap, slow_speed, sort_order, days, hours, outside) -> None:
    """Change a package (by id or name); only the options given change."""
    settings = open_instance(ctx)
    current = _package_or_exit(ctx, package)
    given = {"name_en": name, "name_sw": name_sw, "price": price, "validity": validity,
             "rate_limit": rate, "devices": devices, "data_cap": data_cap,
             "fair_use_rate": slow_speed, "sort_order": sort_order, "days": days, "hours": hours,
             "outside": outside}
    if all(value is None for value in given.values()):
        click.echo("error: nothing to change: give at least one option, e.g. --price 15",
                   err=True)
        ctx.exit(BAD_INPUT)
    raw = {"name_en": current.name_en, "name_sw": current.name_sw, "price": current.price,
           "validity": format_duration(current.validity_seconds),
           "rate_limit": current.rate_limit, "devices": current.devices,
           "data_cap": current.data_cap_bytes, "fair_use_rate": current.fair_use_rate,
           "sort_order": current.sort_order}
    raw.update({key: value for key, value in given.items() if value is not None})
    try:
        changed = update_package(current.id, actor="kibanda packages", **raw)
    except ValidationError as exc:
        click.echo(f"error: {exc.message_for('en')}", err=True)
        ctx.exit(BAD_INPUT)
    click.echo(f"changed package {describe(changed)}")
    _sync_if_configured(settings, changed)


def _set_on_sale(ctx: click.Context, package: str, active: bool) -> None:
    open_instance(ctx)
    changed = set_package_active(_package_or_exit(ctx, package).id, active,
                                 actor="kibanda packages")
    click.echo(f"package {describe(changed)} is on sale again" if active else
               f"retired package {describe(changed)}: no longer sold; codes already given "
               f"keep working")


@packages_group.command("retire")
@click.argument("package")
@click.pass_context
def retire_command(ctx: click.Context, package) -> None:
    """Stop selling a package (by id or name); its sales and codes are kept."""
    _set_on_sale(ctx, package, False)


@packages_group.command("sell")
@click.argument("package")
@click.pass_context
def sell_command(ctx: click.Context, package) -> None:
    """Sell a retired package again (by id or name)."""
    _set_on_sale(ctx, package, True)


def sync_state(package) -> str:
    """The package's router profile state in a few words."""
    if package.router_error:
        return f"error: {package.router_error}"
    if package.router_synced_at:
        return f"synced {format_local(package.router_synced_at)}"
    return "not on router yet"


def _when(package) -> str:
    """The time window in words, and what a purchase outside it does."""
    if not windows.windowed(package):
        return "any time"
    rule = "sold ahead" if package.window_sale == windows.WAIT else "refused outside"
    return f"{windows.window_words(package, 'en')} ({rule})"


@packages_group.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include retired packages.")
@click.pass_context
def list_command(ctx: click.Context, show_all: bool) -> None:
    """Print the packages as a table."""
    open_instance(ctx)
    query = Package.select().order_by(Package.sort_order, Package.price)
    if not show_all:
        query = query.where(Package.active == True)  # noqa: E712
    rows = [("ID", "NAME", "PRICE", "VALIDITY", "SPEED", "DEVICES", "DATA", "WHEN", "ROUTER")]
    for package in query:
        name = package.name_en + (f" / {package.name_sw}" if package.name_sw else "")
        if not package.active:
            name += " (retired)"
        rows.append((str(package.id), name, f"KES {package.price}",
                     format_duration(package.validity_seconds), package.rate_limit or "unlimited",
                     str(package.devices), cap_words(package) or "-",
                     _when(package), sync_state(package)))
    if len(rows) == 1:
        click.echo("no packages yet: add one with kibanda packages add --name '1 hour' "
                   "--price 10 --validity 1h")
        return
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths)]
        click.echo("  ".join(cells + [row[-1]]))
