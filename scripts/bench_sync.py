#!/usr/bin/env python3
"""Benchmark: sales reaching the hub.

(a) drain 50,000 outbox events from one site to ``kibanda hub`` on loopback (SQLite hub):
    events/s and the agent's peak memory (a process of its own). Target: < 10 s, < 60 MB.
(b) 1,000 simulated sites posting signed batches at once to ``kibanda hub`` on PostgreSQL
    with 4 gunicorn workers: events/s and the p99 latency of one batch.

PostgreSQL: ``--postgres URL``, else ``KIBANDA_TEST_POSTGRES_URL``, else a throwaway server
is started like the test suite does (Debian's postgresql package).
Usage: python scripts/bench_sync.py [--events 50000] [--sites 1000] [--per-site 100]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import requests  # noqa: E402

from portal import signing  # noqa: E402

KIBANDA = [sys.executable, "-c", "from portal.cli import main; main(prog_name='kibanda')"]
DRAIN_TARGET_SECONDS, DRAIN_TARGET_MB = 10.0, 60.0

# The agent's side of (a), run in its own process so its peak memory is its own.
DRAIN = r"""
import sys, time
from datetime import datetime
# An appliance has no psycopg (it is the hub's extra); peewee would import it if present.
sys.modules["psycopg"] = sys.modules["psycopg2"] = None
sys.path.insert(0, sys.argv[1])
from agent.sync import Uploader
from portal.models import OutboxEvent, db, init_db
init_db(sys.argv[2])
config = {"UPSTREAM_URL": sys.argv[3], "SITE_ID": "bench-site", "UPSTREAM_KEY_ID": sys.argv[4],
          "INSTANCE_PATH": sys.argv[5]}
uploader = Uploader(config)
start = time.perf_counter()
with db.connection_context():
    sent = 0
    while OutboxEvent.select().where(OutboxEvent.sent_at.is_null()).exists():
        sent += uploader.send(datetime(2030, 1, 1))
elapsed = time.perf_counter() - start
# VmHWM: this process's own peak (ru_maxrss would count the parent's size at fork).
peak_kb = next(int(line.split()[1]) for line in open("/proc/self/status")
               if line.startswith("VmHWM:"))
print(sent, elapsed, peak_kb / 1024)
"""


def start_hub(folder: Path, database_url: str, workers: int) -> tuple[subprocess.Popen, str]:
    """``kibanda hub`` on a free port, listening."""
    from portal.cli.demo_site import free_port, listening

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KIBANDA_")}
    env.update(KIBANDA_HUB_DATABASE_URL=database_url, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([*KIBANDA, "hub", "--hub-instance", str(folder), "--host",
                             "127.0.0.1", "--port", str(port), "--workers", str(workers)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not listening(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("the hub did not start")
        time.sleep(0.1)
    return proc, f"http://127.0.0.1:{port}"


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    proc.wait(timeout=30)


def enroll(hub_url: str, folder: Path, database_url: str, slug: str, key) -> str:
    """A token from ``kibanda hub token``, then POST /v1/enroll: the key id."""
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("KIBANDA_")},
           "KIBANDA_HUB_DATABASE_URL": database_url, "PYTHONPATH": str(ROOT)}
    token = subprocess.run([*KIBANDA, "hub", "--hub-instance", str(folder), "token", "--site",
                            slug], env=env, capture_output=True, text=True, check=True)
    answer = requests.post(f"{hub_url}/v1/enroll", timeout=30, json={
        "token": token.stdout.split()[0], "public_key": signing.public_key_b64(key)})
    answer.raise_for_status()
    return answer.json()["key_id"]


def drain(count: int) -> tuple[float, float]:
    """(a): seconds and peak MB of the agent draining ``count`` events."""
    from helpers import outbox_sales

    from portal.models import create_schema, db, init_db

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        hub, hub_url = start_hub(folder / "hub", "", workers=2)
        try:
            (folder / "site").mkdir()
            key = signing.load_or_create_key(folder / "site" / signing.SITE_KEY_FILE)
            key_id = enroll(hub_url, folder / "hub", "", "bench-site", key)
            database = str(folder / "site" / "kibanda.db")
            init_db(database)
            create_schema()
            with db.connection_context():
                outbox_sales(count, datetime(2026, 3, 11), spacing_seconds=1.7)
            db.close()
            out = subprocess.run([sys.executable, "-c", DRAIN, str(ROOT), database, hub_url,
                                  key_id, str(folder / "site")],
                                 capture_output=True, text=True, check=True)
            sent, elapsed, peak_mb = out.stdout.split()
        finally:
            stop(hub)
    if int(sent) != count:
        raise SystemExit(f"only {sent} of {count} acknowledged")
    return float(elapsed), float(peak_mb)


def many_sites(database_url: str, sites: int, per_site: int, threads: int) -> dict:
    """(b): every site posts one signed batch of ``per_site`` sales, all at once."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        from hub.models import create_schema, db, init_db
        from hub.models import HubSite

        init_db(database_url)
        create_schema()
        keys = {f"site-{n:04d}": signing.new_key() for n in range(sites)}
        with db.connection_context(), db.atomic():
            # Registered directly: enrollment is not what is measured here.
            for slug, key in keys.items():
                raw = signing.public_bytes(key)
                HubSite.insert(slug=slug, name=slug, public_key=signing.public_key_b64(key),
                               key_id=signing.key_id(raw)).execute()
        db.close()
        hub, hub_url = start_hub(folder / "hub", database_url, workers=4)
        paid = (datetime(2026, 3, 11) + timedelta(hours=9)).strftime("%Y-%m-%dT%H:%M:%SZ")
        bodies = {slug: json.dumps({"events": [
            {"id": str(uuid.uuid4()), "seq": n + 1, "kind": "sale", "at": paid,
             "data": {"amount": 20, "source": "mpesa", "package": "1 hour",
                      "receipt": None, "reference": None, "phone": None, "paid_at": paid}}
            for n in range(per_site)]}).encode() for slug in keys}
        latencies, failures = [], []
        lock = threading.Lock()
        queue = list(keys)

        def worker():
            session = requests.Session()
            while True:
                with lock:
                    if not queue:
                        return
                    slug = queue.pop()
                path = f"/v1/sites/{slug}/events"
                headers = signing.sign_headers(keys[slug], slug, "POST", path, bodies[slug],
                                               time.time())
                begin = time.perf_counter()
                answer = session.post(hub_url + path, data=bodies[slug], headers=headers,
                                      timeout=60)
                took = time.perf_counter() - begin
                with lock:
                    latencies.append(took)
                    if answer.status_code != 200 or len(answer.json()["acknowledged"]) != per_site:
                        failures.append(answer.status_code)

        start = time.perf_counter()
        pool = [threading.Thread(target=worker) for _ in range(threads)]
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join()
        elapsed = time.perf_counter() - start
        stop(hub)
        init_db(database_url)
        from hub.models import Event

        with db.connection_context():
            stored = Event.select().count()
        db.close()
    latencies.sort()
    return {"elapsed": elapsed, "events": sites * per_site, "stored": stored,
            "failures": len(failures),
            "p50": latencies[len(latencies) // 2],
            "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]}


def main() -> int:
    """Run both parts; exit status 1 when (a) misses its targets or anything was lost."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--sites", type=int, default=1000)
    parser.add_argument("--per-site", type=int, default=100)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--postgres", default=os.environ.get("KIBANDA_TEST_POSTGRES_URL", ""))
    args = parser.parse_args()

    elapsed, peak = drain(args.events)
    print(f"(a) drain {args.events:,} events, one site -> hub (SQLite, loopback): "
          f"{elapsed:.2f} s, {args.events / elapsed:,.0f} events/s, agent peak memory "
          f"{peak:.1f} MB (targets < {DRAIN_TARGET_SECONDS:.0f} s, < {DRAIN_TARGET_MB:.0f} MB)")

    server = None
    url = args.postgres
    if not url:
        from system_tools import PostgresServer

        server = PostgresServer().start()
        url = server.url
    try:
        from helpers import fresh_postgres_database

        database, drop = fresh_postgres_database(url)
        try:
            result = many_sites(database, args.sites, args.per_site, args.threads)
        finally:
            drop()
    finally:
        if server is not None:
            server.stop()
    print(f"(b) {args.sites:,} sites x {args.per_site} events -> hub (PostgreSQL, 4 gunicorn "
          f"workers, {args.threads} client threads): {result['elapsed']:.2f} s, "
          f"{result['events'] / result['elapsed']:,.0f} events/s, batch latency p50 "
          f"{result['p50'] * 1000:.0f} ms, p99 {result['p99'] * 1000:.0f} ms; stored "
          f"{result['stored']:,} of {result['events']:,}, {result['failures']} failed")
    ok = (elapsed < DRAIN_TARGET_SECONDS and peak < DRAIN_TARGET_MB
          and result["stored"] == result["events"] and not result["failures"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
