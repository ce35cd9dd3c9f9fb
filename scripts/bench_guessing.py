"""Benchmark the guessing limits: one attacker against the real portal.

Starts ``kibanda demo``'s site (``portal.cli.demo_site.DemoSite``: the portal on a real
port, the RouterOS and Daraja emulators), adds 5,000 live 8-digit vouchers, and plays one
attacker on the hotspot for ``--minutes`` in each of two runs, each on a fresh site:

(a) rotating device fields: every request claims a new MAC and IP (every fourth none at
    all), as a script that rewrites the login page's hidden fields would;
(b) a stolen device: the fields of a real phone that has joined the hotspot (the router
    lists it), copied by the attacker.

The attacker sends random wrong codes to ``POST /voucher`` and ``POST /reconnect`` as fast
as ``--threads`` keep-alive connections allow. Printed per run: requests sent, guesses
the portal checked (answered "not valid"), refusals (429), checked guesses per minute,
and the expected time to hit one of the 5,000 live codes at that rate (10^8 possible
codes: about one guess in 20,000 hits).

A run of one limit window (10 minutes, the default) measures the steady rate: inside a
window the limits forget nothing, after it they forget everything. A shorter run
overstates the rate (the whole window's allowance is spent in the first second).

Run ``python scripts/bench_guessing.py [--minutes 10] [--threads 4]``. Nothing here is
asserted by the tests.
"""
from __future__ import annotations

import argparse
import logging
import os
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402

LIVE_CODES = 5000
ALL_CODES = 10 ** 8  # 8 digits
#: Guesses (without repeats) until the first of LIVE_CODES live codes is hit, on average.
GUESSES_TO_HIT = (ALL_CODES + 1) / (LIVE_CODES + 1)
VICTIM = {"mac": "AA:BB:CC:00:07:01", "ip": "10.5.50.171"}


def rotating_fields(n: int) -> dict:
    """A new device claim for every request (every fourth claims nothing)."""
    if n % 4 == 3:
        return {"mac": "", "ip": ""}
    return {"mac": "02:%02X:%02X:%02X:%02X:%02X" % tuple(random.randrange(256) for _ in range(5)),
            "ip": f"10.{random.randrange(5, 250)}.{random.randrange(256)}.{random.randrange(1, 255)}"}


def stolen_fields(n: int) -> dict:
    """A real phone's fields, copied."""
    return dict(VICTIM)


def attack(folder: Path, fields, minutes: float, threads: int) -> dict:
    """One attacker on a fresh demo site for ``minutes``; returns the counts."""
    from portal.cli.demo_site import DemoSite
    from portal.models import Package, Voucher, db
    from portal.timeutil import utcnow
    from portal.venue.vouchers import create_batch

    site = DemoSite(folder / "instance", port=0, decision_delay=0.3, router_clock=None,
                    run_agent=False)
    with site:
        site.seed()
        with db.connection_context():
            package = Package.get(Package.name_en == "1 day")
            batch = create_batch(package, LIVE_CODES, utcnow(), created_by="bench")
            live = {v.code for v in Voucher.select(Voucher.code).where(Voucher.batch == batch.id)}
        site.router.device_joins(VICTIM["ip"], VICTIM["mac"])  # the phone the attacker copies
        counts: Counter = Counter()
        lock = threading.Lock()
        stop_at = time.monotonic() + minutes * 60
        sequence = iter(range(10 ** 12))

        def attacker() -> None:
            local: Counter = Counter()
            with requests.Session() as http:
                while time.monotonic() < stop_at:
                    with lock:
                        n = next(sequence)
                    code = f"{random.randrange(ALL_CODES):08d}"
                    path = "/voucher" if n % 2 else "/reconnect"
                    answer = http.post(f"{site.url}{path}", data={"code": code, **fields(n)},
                                       timeout=30)
                    local["requests"] += 1
                    if answer.status_code == 400:
                        local["checked"] += 1
                    elif answer.status_code == 429:
                        local["refused"] += 1
                    elif answer.status_code == 200 and code in live:
                        local["hits"] += 1
                        local["checked"] += 1
                    else:
                        local[f"status {answer.status_code}"] += 1
            with lock:
                counts.update(local)

        started = time.monotonic()
        workers = [threading.Thread(target=attacker, daemon=True) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        counts["seconds"] = time.monotonic() - started
    return dict(counts)


def duration_words(minutes: float) -> str:
    """Minutes as the largest sensible unit."""
    if minutes < 120:
        return f"{minutes:,.1f} minutes"
    if minutes < 48 * 60:
        return f"{minutes / 60:,.1f} hours"
    return f"{minutes / 1440:,.1f} days"


def report(name: str, counts: dict) -> None:
    """Print one run's figures."""
    minutes = counts["seconds"] / 60
    per_minute = counts.get("checked", 0) / minutes
    expected = duration_words(GUESSES_TO_HIT / per_minute) if per_minute else "never"
    other = {k: v for k, v in counts.items() if k.startswith("status ")}
    print(f"{name}:")
    print(f"    {counts.get('requests', 0):,} requests in {minutes:.1f} min "
          f"({counts.get('requests', 0) / minutes:,.0f} a minute): "
          f"{counts.get('checked', 0):,} wrong codes checked, {counts.get('refused', 0):,} "
          f"refused (429), {counts.get('hits', 0)} hits"
          + (f", other answers {other}" if other else ""))
    print(f"    {per_minute:,.2f} checked guesses a minute -> expected time to hit one of "
          f"{LIVE_CODES:,} live codes: {expected}")


def main() -> None:
    """Parse the options, run both attacks, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0,
                        help="length of each run (default: one limit window, 10)")
    parser.add_argument("--threads", type=int, default=4, help="attacker connections")
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    print(f"{LIVE_CODES:,} live vouchers of {ALL_CODES:,} possible 8-digit codes: a hit "
          f"takes {GUESSES_TO_HIT:,.0f} guesses on average; {args.threads} attacker "
          f"connections, {args.minutes:g} min per run")
    with tempfile.TemporaryDirectory(prefix="kibanda-bench-guessing-") as tmp:
        for n, (name, fields) in enumerate([
                ("(a) rotating device fields", rotating_fields),
                ("(b) a stolen real device's fields", stolen_fields)]):
            report(name, attack(Path(tmp) / f"run-{n}", fields, args.minutes, args.threads))


if __name__ == "__main__":
    main()
