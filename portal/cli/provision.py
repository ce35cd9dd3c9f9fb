"""``kibanda provision``: bring a router up for this site in one command, and say how it went.

Connects as the router's admin, reads what the router is, refuses plainly when it cannot
work (wrong password, API off, too old, an interface missing, too little memory), prints
the plan, applies it after a yes, stores the new API user's password encrypted in the
instance, makes the router fetch the hotspot pages and checks them, then prints the site
sheet and whether the router could run Kibanda itself. The logic is in
``portal/venue/provisioning.py``; here are only the words and the order.
"""
from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import click
import requests
from werkzeug.serving import WSGIRequestHandler, make_server

from .. import create_app
from ..config import write_config_values
from ..crypto import new_password
from ..errors import RouterError, RouterLoginRefused, RouterUnreachable, ValidationError
from ..models import Package, db
from ..routeros import RouterGateway
from ..venue import provisioning, site_sheet
from ..venue.hotspot_files import HOTSPOT_FILES
from ..venue.packages import sync_profile
from .instance import BAD_INPUT, open_instance

#: Exit status when the router cannot be provisioned (unreachable, refused, unsuitable).
REFUSED = 1


def parse_router(text: str, ssl: bool = False) -> tuple[str, int]:
    """``HOST[:PORT]`` (IPv6 in brackets) to host and port."""
    text = text.strip()
    host, port = text, 8729 if ssl else 8728
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest.startswith(":"):
            port = rest[1:]
    elif text.count(":") == 1:
        host, port = text.split(":")
    try:
        port = int(port)
    except ValueError:
        raise click.BadParameter(f"not a port number: {port!r}", param_hint="--router") from None
    if not host or not 0 < port < 65536:
        raise click.BadParameter(f"HOST[:PORT], not {text!r}", param_hint="--router")
    return host, port


def connection_problem(exc: RouterError, host: str, port: int, user: str) -> str:
    """The technician's words for a failed connection: what is wrong and what to do."""
    if isinstance(exc, RouterLoginRefused):
        return (f"wrong password: the router at {host}:{port} refused user {user!r} "
                f"(or that user lacks the api policy). Check --user and --password.")
    if isinstance(exc, RouterUnreachable):
        return (f"API service disabled or port closed: nothing answers on {host}:{port}. "
                f"On the router: /ip service enable api (and check its address list), "
                f"and check the cable and the address. ({exc.operator_message})")
    return exc.operator_message


@contextmanager
def portal_answering(instance, portal_url: str, overrides: dict):
    """The portal must serve the hotspot pages while the router fetches them: when
    nothing answers at ``portal_url``, serve the site's app there for the duration."""
    url = f"{portal_url}/hotspot-html/login.html"
    try:
        requests.get(url, timeout=3)
        yield None
        return
    except requests.RequestException:
        pass
    port = urlsplit(portal_url).port or 80
    app = create_app({**overrides, "DATABASE_KEEP_OPEN": False}, instance=str(instance))
    # On every address: the router fetches from the hotspot side, not from loopback.
    server = make_server("0.0.0.0", port, app, threaded=True, request_handler=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                              daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
        db.connect(reuse_if_open=True)  # the served requests closed the CLI's connection


class _QuietHandler(WSGIRequestHandler):
    """The router's nine fetches are not worth nine lines on the technician's screen."""

    def log_request(self, *args, **kwargs) -> None:
        pass


def served_sizes(portal_url: str) -> dict[str, int]:
    """The size of every hotspot file as the portal serves it now."""
    sizes = {}
    with requests.Session() as session:
        for name in HOTSPOT_FILES:
            response = session.get(f"{portal_url}/hotspot-html/{name}", timeout=10)
            response.raise_for_status()
            sizes[name] = len(response.content)
    return sizes


def _stored_password(settings: dict, host: str, port: int, api_user: str) -> str:
    """The API user's password this instance holds for this router, if any."""
    if (settings.get("ROUTER_USER") == api_user and settings.get("ROUTER_HOST") == host
            and int(settings.get("ROUTER_PORT") or 0) == port):
        return str(settings.get("ROUTER_PASSWORD") or "")
    return ""


def _logs_in(host: str, port: int, user: str, password: str, timeout: float) -> bool:
    try:
        with RouterGateway(host, port, user, password, timeout=timeout) as gateway:
            gateway.version()
    except RouterError:
        return False
    return True


def _write_private(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def _profiles_missing(gateway) -> list[str]:
    present = {row.get("name") for row in gateway.profiles()}
    return [p.profile_name for p in Package.select().where(Package.active == True)  # noqa: E712
            if p.profile_name not in present]


@click.command("provision")
@click.option("--router", "router", required=True, help="The router's API address, HOST[:PORT].")
@click.option("--user", default="admin", show_default=True, help="A full-rights router user.")
@click.option("--password", default="", help="That user's password.")
@click.option("--site-name", required=True, help="The venue's name (pages, vouchers, SSID).")
@click.option("--hotspot-ports", required=True, help="Ports for customers, e.g. ether2,ether3.")
@click.option("--wan", default="ether1", show_default=True, help="The internet port.")
@click.option("--network", default="10.5.50.0/24", show_default=True,
              help="The hotspot network; the router takes its first address.")
@click.option("--portal-url", default=None,
              help="How phones reach this appliance (default: the PORTAL_URL setting).")
@click.option("--appliance-address", default=None,
              help="This appliance's address as the router sees it (default: found).")
@click.option("--dns-name", default=None, help="The hotspot's DNS name (default: setting).")
@click.option("--ssid", default=None, help="The WiFi name for the site sheet (default: site name).")
@click.option("--api-user", default="kibanda", show_default=True,
              help="The router user Kibanda creates for itself.")
@click.option("--yes", is_flag=True, help="Apply without asking.")
@click.option("--export", "export", type=click.Path(dir_okay=False), default=None,
              help="Also write the site's script here, for /import by hand (holds the password).")
@click.option("--container-script", type=click.Path(dir_okay=False), default=None,
              help="Write the router-resident (container) script here.")
@click.pass_context
def provision_command(ctx, router, user, password, site_name, hotspot_ports, wan, network,
                      portal_url, appliance_address, dns_name, ssid, api_user, yes, export,
                      container_script):
    """Configure a MikroTik router for Kibanda (hotspot, API user, pages); safe to run again."""
    settings = open_instance(ctx)
    instance = ctx.find_root().obj["instance"]
    host, port = parse_router(router)
    timeout = float(settings.get("ROUTER_TIMEOUT") or 5.0)
    admin = RouterGateway(host, port, user, password, name="router", timeout=timeout)
    try:
        facts = provisioning.read_facts(admin)
    except RouterError as exc:
        admin.close()
        click.echo(f"FAILED {connection_problem(exc, host, port, user)}", err=True)
        ctx.exit(REFUSED)
    opts = {"site_name": site_name, "hotspot_ports": hotspot_ports, "wan": wan,
            "network": network, "portal_url": portal_url, "appliance_address": appliance_address,
            "dns_name": dns_name, "ssid": ssid, "api_user": api_user, "yes": yes,
            "export": export, "container_script": container_script}
    try:
        _provision(ctx, settings, instance, admin, facts, host, port, timeout, opts)
    except RouterError as exc:
        click.echo(f"FAILED {exc.operator_message}", err=True)
        ctx.exit(REFUSED)
    finally:
        admin.close()


def _provision(ctx, settings, instance, admin, facts, host, port, timeout, opts) -> None:
    click.echo(f"router {host}:{port}: RouterOS {facts.version}, {facts.board}, "
               f"{facts.architecture}, {facts.free_memory // 2**20} MB free of "
               f"{facts.total_memory // 2**20} MB")
    stored = _stored_password(settings, host, port, opts["api_user"])
    known = bool(stored) and _logs_in(host, port, opts["api_user"], stored, timeout)
    try:
        spec = provisioning.SiteSpec(
            site_name=opts["site_name"], hotspot_ports=opts["hotspot_ports"].split(","),
            wan=opts["wan"], network=opts["network"],
            portal_url=opts["portal_url"] or str(settings.get("PORTAL_URL") or ""),
            appliance=opts["appliance_address"] or provisioning.appliance_address(host, port),
            dns_name=opts["dns_name"] or str(settings.get("HOTSPOT_DNS_NAME") or ""),
            hotspot_server=str(settings.get("HOTSPOT_SERVER") or "hotspot1"),
            mpesa_base_url=str(settings.get("MPESA_BASE_URL") or ""),
            api_user=opts["api_user"], api_password=stored if known else new_password(20),
            ssid=opts["ssid"] or "")
    except ValidationError as exc:
        click.echo(f"FAILED {exc.operator_message}", err=True)
        ctx.exit(BAD_INPUT)
    problems = provisioning.refusals(facts, spec)
    for problem in problems:
        click.echo(f"FAILED {problem}", err=True)
    if problems:
        ctx.exit(REFUSED)
    script = provisioning.site_script(spec, facts)
    if opts["export"]:
        _write_private(opts["export"], script)
        click.echo(f"wrote {opts['export']} (it holds the API user's password: keep it private)")
    verdict_ok, verdict = provisioning.container_verdict(facts)
    if opts["container_script"]:
        if not verdict_ok:
            click.echo(f"note: {verdict}")
        _write_private(opts["container_script"], provisioning.container_script(spec, facts))
        click.echo(f"wrote {opts['container_script']}")

    site_values = {"ROUTER_HOST": host, "ROUTER_PORT": port, "ROUTER_USER": spec.api_user,
                   "ROUTER_PASSWORD": spec.api_password, "SITE_NAME": spec.site_name,
                   "PORTAL_URL": spec.portal_url, "HOTSPOT_SERVER": spec.hotspot_server,
                   "HOTSPOT_DNS_NAME": spec.dns_name, "HOTSPOT_ADDRESS": spec.hotspot_address}
    if opts["export"]:
        # The exported script creates the API user with this password: keep it here too,
        # or a router set up by /import could not be reached by this appliance.
        write_config_values(instance, site_values)
    changes = provisioning.plan(admin, script, password_known=known)
    missing_profiles = _profiles_missing(admin)
    with portal_answering(instance, spec.portal_url, {**site_values, "ROUTER_PASSWORD": ""}):
        sizes = served_sizes(spec.portal_url)
        files = provisioning.compare_hotspot_files(admin, sizes)
        stale = [f.name for f in files if not f.current]
        if not changes and not missing_profiles and not stale:
            click.echo("nothing to change: the router already has everything Kibanda needs")
        else:
            click.echo("plan:")
            for change in changes:
                click.echo(f"  {change.describe()}")
            for name in missing_profiles:
                click.echo(f"  add  /ip hotspot user profile name={name} (a package)")
            for name in stale:
                click.echo(f"  fetch {provisioning.HTML_DIRECTORY}/{name} from {spec.portal_url}")
            # No answer (no terminal, end of input) is a no: only --yes applies unasked.
            if not opts["yes"] and not click.confirm("apply this plan to the router?",
                                                     default=False, abort=False):
                click.echo("not applied; nothing changed on the router")
                return
            provisioning.apply(admin, changes)
            # Stored before anything else can fail: the router already has this password.
            write_config_values(instance, site_values)
            for package in Package.select().where(Package.active == True):  # noqa: E712
                sync_profile(package, admin)
            files = provisioning.fetch_hotspot_files(admin, spec.portal_url, sizes)
            click.echo(f"applied {len(changes)} changes, "
                       f"{len(missing_profiles)} package profiles, {len(stale)} files fetched")
    write_config_values(instance, site_values)
    failed = _report_files(files)
    if not _logs_in(host, port, spec.api_user, spec.api_password, timeout):
        click.echo(f"FAILED the API user {spec.api_user!r} cannot log in from this appliance "
                   f"({spec.appliance}): check /user and /ip service api address", err=True)
        failed = True
    sheet = site_sheet.render(spec, facts, verdict)
    sheet_path = Path(instance) / "site-sheet.html"
    sheet_path.write_text(sheet, encoding="utf-8")
    for line in site_sheet.summary(spec, verdict):
        click.echo(line)
    click.echo(f"site sheet: {sheet_path} (print it for the owner)")
    if failed:
        ctx.exit(REFUSED)


def _report_files(files) -> bool:
    failed = False
    for check in files:
        if not check.current:
            failed = True
            got = "missing" if check.on_router is None else f"{check.on_router} bytes"
            click.echo(f"FAILED hotspot file {check.name}: router has {got}, the portal "
                       f"serves {check.served} bytes", err=True)
    if not failed:
        click.echo(f"hotspot files: {len(files)} on the router, sizes match the portal's")
    return failed
