"""``kibanda serve``: the portal under gunicorn, built by ``create_app`` in each worker."""
from __future__ import annotations

import gc

import click
from gunicorn.app.base import BaseApplication
from gunicorn.glogging import Logger

from ..web.callback import redact_secret
from .instance import open_instance
from .systemd import watch_portal


class RedactingLogger(Logger):
    """Gunicorn's logger with the M-Pesa callback secret cut out of every access-log line."""

    def atoms(self, resp, req, environ, request_time):
        """The access-log fields, the request line and path showing ``/mpesa/callback/***``."""
        atoms = super().atoms(resp, req, environ, request_time)
        return {key: redact_secret(value) if isinstance(value, str) else value
                for key, value in atoms.items()}


class PortalServer(BaseApplication):
    """Gunicorn driven from Python: every worker builds the app from the instance folder.

    Building the app in the worker (not in the master before fork) gives each worker its
    own database connection and router socket, and applies the instance's ``kibanda.toml``
    and the ``KIBANDA_*`` variables exactly as ``create_app`` reads them.
    """

    def __init__(self, instance: str, options: dict, overrides: dict | None = None):
        self.instance = instance
        self.options = options
        self.overrides = overrides
        super().__init__()

    def load_config(self) -> None:
        """Hand our options to gunicorn (unknown ones are a programming error)."""
        for key, value in self.options.items():
            self.cfg.set(key, value)
        if "control_socket_disable" in self.cfg.settings:
            # gunicorn >= 24 opens a control socket at one fixed path per user: a second
            # server on the same box (a bench, a test) would fight over it. We never use it.
            self.cfg.set("control_socket_disable", True)

    def load(self):
        """Build the WSGI app, once, in the master (``preload_app``): the workers forked
        from it share its pages instead of each building (and paying for) its own."""
        from .. import create_app
        from ..models import db

        app = create_app(self.overrides, instance=self.instance)
        warm_up(app)
        # No connection crosses the fork: each worker thread opens its own (SQLite forbids
        # using a connection in two processes; the router and M-Pesa links are made on
        # first use, in the worker, and a gateway notices a fork by its pid).
        if not db.is_closed():
            db.close()
        # Everything built so far is kept out of the collector's reach, so a collection in
        # a worker does not write to (and so copy) the pages it shares with the master.
        gc.freeze()
        return app


def warm_up(app) -> None:
    """Build in the master what every worker would otherwise build for itself on its first
    requests: the templates compiled, the Swahili catalogue, the CLDR data of both locales.
    Shared after the fork, they are paid for once (scripts/bench_memory.py)."""
    from ..i18n import LANGUAGES, format_datetime, format_money, translations
    from ..timeutil import utcnow

    for name in app.jinja_env.list_templates():
        if name.endswith(".html"):
            app.jinja_env.get_template(name)
    now = utcnow()
    for lang in LANGUAGES:
        translations(lang)
        format_money(1500, lang), format_datetime(now, lang)


def gunicorn_options(host: str, port: int, workers: int, threads: int,
                     access_log: bool) -> dict:
    """Gunicorn settings for the appliance."""
    options = {
        "bind": f"{host}:{port}",
        "workers": workers,
        # gthread keeps connections alive and lets one slow router call not block a worker.
        "worker_class": "gthread",
        "threads": threads,
        "timeout": 60,
        "graceful_timeout": 10,
        "keepalive": 5,
        "errorlog": "-",
        "loglevel": "info",
        "proc_name": "kibanda-portal",
        # The callback URL carries its secret: never written to a log.
        "logger_class": RedactingLogger,
        "preload_app": True,
        # Under systemd with WatchdogSec: ping while the portal answers (gunicorn itself
        # only says READY).
        "when_ready": lambda _server: watch_portal(port),
    }
    if access_log:
        options["accesslog"] = "-"
        options["access_log_format"] = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms'
    return options


@click.command("serve")
@click.option("--host", default="0.0.0.0", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=int, help="Port to listen on.")
@click.option("--workers", default=2, show_default=True, type=int, envvar="KIBANDA_WEB_WORKERS",
              help="Worker processes (KIBANDA_WEB_WORKERS).")
@click.option("--threads", default=4, show_default=True, type=int, envvar="KIBANDA_WEB_THREADS",
              help="Threads per worker (KIBANDA_WEB_THREADS).")
@click.option("--access-log/--no-access-log", default=True, show_default=True,
              help="Print one line per request to stdout.")
@click.pass_context
def serve_command(ctx: click.Context, host: str, port: int, workers: int, threads: int,
                  access_log: bool) -> None:
    """Serve the portal (customer pages, M-Pesa callback, admin) under gunicorn."""
    # Create keys and schema once in the master so workers never race to migrate.
    settings = open_instance(ctx)
    click.echo(f"instance {ctx.find_root().obj['instance']}, database {settings['DATABASE']}")
    PortalServer(str(ctx.find_root().obj["instance"]),
                 gunicorn_options(host, port, workers, threads, access_log),
                 overrides={"DATABASE_KEEP_OPEN": True}).run()
