"""``kibanda run``: the portal and the agent under one small supervisor (the image's entry).

Each runs as its own process (``kibanda serve``, ``kibanda agent``), forked from the
supervisor after it has imported the code both use (Flask, peewee, requests, librouteros,
cryptography, the portal's rooms): the children share those pages instead of each
loading its own copy, which on a router is the difference between fitting and not
(``scripts/bench_memory.py``). The supervisor creates the instance's keys and schema
first (so the two children never race to), then closes the database: nothing but
imported code crosses the fork. When either child dies it
is started again, after a pause that doubles while it keeps dying (1 s up to 30 s) and
starts again from 1 s once it has stayed up a minute. SIGTERM or Ctrl-C: both get
SIGTERM, the supervisor waits for them and exits. Under systemd (``NOTIFY_SOCKET``) it
says READY once both run and sends the watchdog ping only while both are alive.
"""
from __future__ import annotations

import gc
import os
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass

import click

from .systemd import sd_notify

FIRST_PAUSE, MAX_PAUSE, STEADY = 1.0, 30.0, 60.0


class Forked:
    """A child process forked from this one, running ``kibanda <args>`` (Popen's words:
    ``pid``, ``returncode`` negative for a signal, ``poll``, ``wait``, ``terminate``)."""

    def __init__(self, args: list[str]):
        self.returncode: int | None = None
        sys.stdout.flush()
        sys.stderr.flush()
        # SIGINT/SIGTERM held back across the fork: one arriving before the child has reset
        # its handlers would otherwise only set the supervisor's (copied) stop flag.
        held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        try:
            self.pid = os.fork()
            if self.pid == 0:  # the child: never returns
                os._exit(_run_command(args, held))
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"pid {self.pid} still running")
            time.sleep(0.05)
        return self.returncode

    def terminate(self) -> None:
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        self._signal(signal.SIGKILL)

    def _signal(self, number: int) -> None:
        if self.poll() is None:
            try:
                os.kill(self.pid, number)
            except ProcessLookupError:
                pass


def _run_command(args: list[str], mask: set) -> int:
    """In a forked child: run ``kibanda <args>`` and return its exit code."""
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, signal.SIG_DFL)  # the command sets its own
    signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # then let them through
    code = 1
    try:
        from .main import main

        main.main(args=args, prog_name="kibanda", standalone_mode=True)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # noqa: BLE001 - the child must always exit, and say why
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    return code


def preload() -> None:
    """Import what the portal and the agent both run on, before any fork (no database, no
    connection, no thread is opened here), and keep it out of the collector's reach so
    the children go on sharing those pages."""
    import flask  # noqa: F401
    import gunicorn.app.base  # noqa: F401
    import requests  # noqa: F401

    import agent.worker  # noqa: F401

    from .. import web  # noqa: F401
    from . import agent as agent_command, serve  # noqa: F401
    from ..web import admin, c2b, callback, captive, customer, files, health  # noqa: F401

    gc.freeze()


@dataclass
class Child:
    """One supervised process and its restart schedule."""

    name: str
    args: list[str]
    process: Forked | None = None
    started: float = 0.0
    pause: float = FIRST_PAUSE
    restart_at: float | None = None
    restarts: int = 0

    def start(self) -> None:
        """Start (or start again) the process."""
        self.process = Forked(self.args)
        self.started = time.monotonic()
        self.restart_at = None

    def alive(self) -> bool:
        """The process is running."""
        return self.process is not None and self.process.poll() is None

    def check(self, now: float) -> str | None:
        """Restart when due; returns a line to print when something happened."""
        if self.alive():
            if now - self.started >= STEADY:
                self.pause = FIRST_PAUSE
            return None
        if self.restart_at is None:
            code = self.process.returncode if self.process else None
            if now - self.started >= STEADY:
                self.pause = FIRST_PAUSE
            self.restart_at = now + self.pause
            line = (f"{self.name} (pid {self.process.pid if self.process else '-'}) exited "
                    f"with {code}; restarting in {self.pause:g}s")
            self.pause = min(self.pause * 2, MAX_PAUSE)
            return line
        if now >= self.restart_at:
            self.start()
            self.restarts += 1
            return f"{self.name} started again (pid {self.process.pid})"
        return None

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM, then SIGKILL if it does not leave in time."""
        if not self.alive():
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except TimeoutError:
            self.process.kill()
            self.process.wait()


def supervise(children: list[Child], stop: threading.Event, tick: float = 0.5,
              echo=click.echo) -> None:
    """Start every child and keep them running until ``stop`` is set."""
    for child in children:
        child.start()
        echo(f"{child.name} started (pid {child.process.pid})")
    sd_notify("READY=1")
    try:
        while not stop.wait(tick):
            now = time.monotonic()
            for child in children:
                line = child.check(now)
                if line:
                    echo(line)
            if all(child.alive() for child in children):
                sd_notify("WATCHDOG=1")
    finally:
        sd_notify("STOPPING=1")
        for child in children:
            child.stop()
        echo("stopped")


@click.command("run")
@click.option("--host", default="0.0.0.0", show_default=True, help="Portal address.")
@click.option("--port", default=8080, show_default=True, type=int, help="Portal port.")
@click.option("--workers", default=2, show_default=True, type=int,
              envvar="KIBANDA_WEB_WORKERS", help="Portal worker processes.")
@click.option("--threads", default=4, show_default=True, type=int,
              envvar="KIBANDA_WEB_THREADS", help="Threads per worker.")
@click.option("--access-log/--no-access-log", default=False, show_default=True,
              help="One line per request (off: a router's log is small).")
@click.pass_context
def run_command(ctx: click.Context, host: str, port: int, workers: int, threads: int,
                access_log: bool) -> None:
    """Run the portal and the agent; restart either one if it dies."""
    instance = str(ctx.find_root().obj["instance"])
    base = ["--instance", instance]
    from ..models import db
    from .instance import open_instance

    open_instance(ctx)
    db.close()
    preload()
    children = [
        Child("portal", [*base, "serve", "--host", host, "--port", str(port),
                         "--workers", str(workers), "--threads", str(threads),
                         "--access-log" if access_log else "--no-access-log"]),
        Child("agent", [*base, "agent"]),
    ]
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set())
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        supervise(children, stop)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
