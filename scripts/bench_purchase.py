"""Benchmark the money path's last mile and the landing page.

(a) Callback to online: pending purchases are written straight into the database (fake
    CheckoutRequestIDs), then Daraja's documented success callback is POSTed to the
    running portal over HTTP, one at a time; the clock stops when the device's session is
    in the RouterOS emulator's ``/ip/hotspot/active`` (every router reply delayed by
    ``--latency-ms``). The portal settles and provisions inside the callback request.
(c) Paid to online with no callback at all (a site behind NAT: the CallBackURL leads
    nowhere): customers buy through ``POST /buy`` from distinct devices, the emulated
    customer pays ``--decision-delay`` seconds later, and only the agent's STK queries can
    see it; the clock runs from the moment the customer pays to the device's session.
(b) The landing page under ``kibanda serve`` (gunicorn, ``--workers`` workers) with
    ``--clients`` concurrent clients (threads with one keep-alive ``http.client`` connection
    each, spread over two client processes so the load generator is not one interpreter
    lock): requests per second and latency percentiles.

Run ``python scripts/bench_purchase.py [--purchases 200] [--latency-ms 2] [--clients 50]
[--seconds 10] [--no-callback-purchases 20]``. Prints its figures; targets: (a) p95 <
100 ms, (c) median < 3 s, (b) >= 500 req/s and p99 < 100 ms on a 2-core machine. Nothing
here is asserted by the tests.
"""
from __future__ import annotations

import argparse
import http.client
import logging
import multiprocessing
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402

from portal.cli.demo_site import free_port, listening  # noqa: E402


def percentile(values: list[float], pct: float) -> float:
    """The ``pct`` percentile (nearest rank) of ``values``."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, int(round(pct / 100 * len(ordered) + 0.5)) - 1))
    return ordered[rank]


def success_callback(checkout_id: str, receipt: str, amount: int, phone: str) -> dict:
    """Daraja's documented STK callback for a successful payment."""
    return {"Body": {"stkCallback": {
        "MerchantRequestID": f"bench-{checkout_id}", "CheckoutRequestID": checkout_id,
        "ResultCode": 0, "ResultDesc": "The service request is processed successfully.",
        "CallbackMetadata": {"Item": [
            {"Name": "Amount", "Value": float(amount)},
            {"Name": "MpesaReceiptNumber", "Value": receipt},
            {"Name": "TransactionDate", "Value": 20250101120000},
            {"Name": "PhoneNumber", "Value": int(phone)},
        ]}}}}


def demo_site(folder: Path, **options):
    """``kibanda demo``'s site in ``folder`` (not started): a quick emulated customer, the
    router's clock left still."""
    from portal.cli.demo_site import DemoSite

    return DemoSite(folder / "instance", port=0, decision_delay=0.3, router_clock=None,
                    **options)


def sessions(router, ip: str | None = None, mac: str | None = None) -> list[dict]:
    """Active hotspot sessions on the emulated router (optionally of one device)."""
    return [row for row in router.rows("/ip/hotspot/active")
            if (ip is None or row.get("address") == ip)
            and (mac is None or row.get("mac-address", "").upper() == mac.upper())]


def wait_for_session(router, ip: str, mac: str, timeout: float, poll: float) -> dict:
    """Block until the device has an active session; returns it (AssertionError on timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        found = sessions(router, ip, mac)
        if found:
            return found[0]
        if time.monotonic() >= deadline:
            raise AssertionError(f"no active session for {ip} {mac} after {timeout}s")
        time.sleep(poll)


def bench_callbacks(folder: Path, purchases: int, latency_ms: float) -> dict:
    """(a) Callback POST to active session, per purchase; returns the figures in ms."""
    from portal.models import Package, Purchase, db
    from portal.timeutil import utcnow

    with demo_site(folder, router_latency_ms=latency_ms, agent_interval=2.0) as site:
        site.seed()
        with db.connection_context():
            package = Package.get(Package.name_en == "1 hour")
        rows = []
        with db.connection_context(), db.atomic():
            for i in range(purchases):
                phone = f"2547{10000000 + i:08d}"
                purchase = Purchase.create(
                    phone=phone, package=package, amount=package.price,
                    mac=f"02:00:00:00:{i // 256:02X}:{i % 256:02X}",
                    ip=f"10.5.{50 + i // 250}.{1 + i % 250}",
                    checkout_request_id=f"ws_CO_bench_{i:05d}", created_at=utcnow(),
                    next_query_at=utcnow() + timedelta(minutes=10))
                rows.append((purchase.checkout_request_id, phone, purchase.ip, purchase.mac))
        callback = f"{site.url}/mpesa/callback/{site.app.config['CALLBACK_SECRET']}"
        timings, in_request = [], 0
        with requests.Session() as http:
            # One warm-up round trip (connection, token-less path) outside the figures.
            http.get(f"{site.url}/healthz", timeout=10)
            for i, (checkout, phone, ip, mac) in enumerate(rows):
                body = success_callback(checkout, f"BEN{i:07d}", package.price, phone)
                started = time.perf_counter()
                answer = http.post(callback, json=body, timeout=10)
                answer.raise_for_status()
                if sessions(site.router, ip, mac):
                    in_request += 1
                else:
                    wait_for_session(site.router, ip, mac, timeout=10, poll=0.0005)
                timings.append((time.perf_counter() - started) * 1000)
        online = len(sessions(site.router))
    return {"n": len(timings), "p50": percentile(timings, 50), "p95": percentile(timings, 95),
            "max": max(timings), "mean": statistics.fmean(timings), "online": online,
            "in_request": in_request}


# --- (c) paid -> online when no callback ever comes --------------------------------------------

def bench_without_callbacks(folder: Path, purchases: int, decision_delay: float,
                            agent_interval: float = 2.0) -> dict:
    """(c) Seconds from the customer paying to the device's session, queries only."""
    from portal.cli.demo_site import DEMO_DEVICE

    with demo_site(folder, agent_interval=agent_interval,
                   extra_settings={"CALLBACK_BASE_URL": "http://127.0.0.1:9"}) as site:
        site.seed()
        site.daraja.decision_delay = decision_delay
        waits: list[float] = []
        failures: list[str] = []
        lock = threading.Lock()

        def customer(i: int) -> None:
            mac = f"02:00:00:01:{i // 256:02X}:{i % 256:02X}"
            ip = f"10.5.60.{1 + i}"
            with requests.Session() as phone:
                phone.get(site.customer_url(mac=mac, ip=ip), timeout=10)
                answer = phone.post(f"{site.url}/buy", timeout=20, allow_redirects=False, data={
                    "package": "1", "phone": f"07{12000000 + i:08d}", "mac": mac, "ip": ip,
                    "link-login-only": DEMO_DEVICE["link-login-only"]})
            if answer.status_code != 303:
                with lock:
                    failures.append(f"buy {answer.status_code}")
                return
            phone_number = f"2547{12000000 + i:08d}"
            txn = next(t for t in site.daraja.transactions if t["phone"] == phone_number)
            wait_for_session(site.router, ip, mac, timeout=60, poll=0.01)
            with lock:
                waits.append(time.monotonic() - txn["decided_monotonic"])

        pool = []
        for i in range(purchases):
            thread = threading.Thread(target=customer, args=(i,))
            pool.append(thread)
            thread.start()
            time.sleep(0.7)  # customers arrive one after the other, not in lockstep
        for thread in pool:
            thread.join()
        callbacks = sum(len(t["callback_statuses"]) for t in site.daraja.transactions)
    return {"n": len(waits), "p50": statistics.median(waits), "p95": percentile(waits, 95),
            "max": max(waits), "failures": failures, "callbacks": callbacks}


# --- (b) the landing page under gunicorn ------------------------------------------------------

def _client_process(url: str, threads: int, warmup: float, seconds: float, queue) -> None:
    """One load-generating process: ``threads`` keep-alive connections fetching ``url``.

    Plain ``http.client`` rather than requests: the load generator shares the two cores
    with the server, and every millisecond it spends is one the server does not get.
    """
    parts = urlsplit(url)
    target = parts.path + ("?" + parts.query if parts.query else "")
    start_at = time.monotonic() + warmup
    stop_at = start_at + seconds
    latencies: list[list[float]] = [[] for _ in range(threads)]
    errors = [0] * threads

    def worker(slot: int) -> None:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        cookie = ""
        try:
            while True:
                began = time.monotonic()
                if began >= stop_at:
                    return
                try:
                    conn.request("GET", target, headers={"Cookie": cookie} if cookie else {})
                    answer = conn.getresponse()
                    body = answer.read()
                    cookie = (answer.getheader("Set-Cookie") or "").split(";")[0] or cookie
                    ok = answer.status == 200 and b"KES 800" in body
                except (OSError, http.client.HTTPException):
                    ok = False
                    conn.close()
                    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
                took = time.monotonic() - began
                if began >= start_at:
                    if ok:
                        latencies[slot].append(took * 1000)
                    else:
                        errors[slot] += 1
        finally:
            conn.close()

    pool = [threading.Thread(target=worker, args=(slot,)) for slot in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    queue.put(([x for per in latencies for x in per], sum(errors)))


def landing_load(url: str, clients: int, seconds: float, warmup: float = 2.0,
                 processes: int = 2) -> list[tuple[list[float], int]]:
    """``clients`` keep-alive clients on ``url`` for ``seconds``, spread over ``processes``
    processes; each process's (latencies in ms, errors)."""
    queue = multiprocessing.Queue()
    per = [clients // processes + (1 if i < clients % processes else 0)
           for i in range(processes)]
    procs = [multiprocessing.Process(target=_client_process,
                                     args=(url, n, warmup, seconds, queue)) for n in per]
    for proc in procs:
        proc.start()
    results = [queue.get(timeout=warmup + seconds + 60) for _ in procs]
    for proc in procs:
        proc.join()
    return results


def stop_process(proc: subprocess.Popen, timeout: float = 20) -> None:
    """SIGTERM, then SIGKILL if it has not left within ``timeout``."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def wait_listening(port: int, timeout: float = 30) -> None:
    """Block until 127.0.0.1:port accepts connections."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if listening(port):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listening on {port} after {timeout}s")


def bench_landing(folder: Path, workers: int, clients: int, seconds: float,
                  processes: int = 2, threads: int = 4) -> dict:
    """(b) Requests per second and latency of the landing page under gunicorn."""
    # The demo site seeds the instance (packages, settings); gunicorn then serves it.
    with demo_site(folder, run_agent=False) as site:
        site.seed()
        instance = str(site.instance)
        url_path = site.customer_url(mac="AA:BB:CC:00:00:01", ip="10.5.50.23").split("/", 3)[3]
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("KIBANDA_")}
        server = subprocess.Popen(
            [sys.executable, "-c", "from portal.cli import main; main(prog_name='kibanda')",
             "--instance", instance, "serve", "--host", "127.0.0.1", "--port", str(port),
             "--workers", str(workers), "--threads", str(threads), "--no-access-log"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_listening(port)
            url = f"http://127.0.0.1:{port}/{url_path}"
            assert requests.get(url, timeout=10).status_code == 200
            results = landing_load(url, clients, seconds, processes=processes)
        finally:
            stop_process(server)
    latencies = [x for lat, _err in results for x in lat]
    errors = sum(err for _lat, err in results)
    return {"requests": len(latencies), "errors": errors, "rps": len(latencies) / seconds,
            "p50": percentile(latencies, 50), "p95": percentile(latencies, 95),
            "p99": percentile(latencies, 99), "max": max(latencies)}


def main() -> None:
    """Run both benchmarks and print their figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--purchases", type=int, default=200)
    parser.add_argument("--latency-ms", type=float, default=2.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4, help="Threads per gunicorn worker.")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--no-callback-purchases", type=int, default=20)
    parser.add_argument("--decision-delay", type=float, default=3.0,
                        help="Seconds the emulated customer takes to pay, in (c).")
    parser.add_argument("--only", choices=("callback", "no-callback", "landing"), default=None)
    args = parser.parse_args()
    # One access-log line per request would be measured too; (c)'s callbacks fail on purpose.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    logging.getLogger("kibanda.sim.daraja").setLevel(logging.ERROR)
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory(prefix="kibanda-bench-") as tmp:
        if args.only in (None, "callback"):
            a = bench_callbacks(Path(tmp) / "a", args.purchases, args.latency_ms)
            print(f"(a) callback -> active session on the router, {a['n']} purchases, "
                  f"router latency {args.latency_ms:g} ms per reply:")
            print(f"    p50 {a['p50']:.1f} ms   p95 {a['p95']:.1f} ms   max {a['max']:.1f} ms   "
                  f"mean {a['mean']:.1f} ms   (target p95 < 100 ms: "
                  f"{'met' if a['p95'] < 100 else 'MISSED'})")
            print(f"    online on the router: {a['online']}; provisioned within the callback "
                  f"request: {a['in_request']}/{a['n']}")
        if args.only in (None, "no-callback"):
            c = bench_without_callbacks(Path(tmp) / "c", args.no_callback_purchases,
                                        args.decision_delay)
            print(f"(c) paid -> online with no callback (site behind NAT), {c['n']} customers, "
                  f"the agent's STK queries only:")
            print(f"    median {c['p50']:.2f} s   p95 {c['p95']:.2f} s   max {c['max']:.2f} s "
                  f"after the customer paid   (target median < 3 s: "
                  f"{'met' if c['p50'] < 3 else 'MISSED'})")
            print(f"    callbacks delivered: {c['callbacks']}; failed purchases: "
                  f"{len(c['failures'])} {c['failures'][:3]}")
        if args.only in (None, "landing"):
            b = bench_landing(Path(tmp) / "b", args.workers, args.clients, args.seconds,
                              threads=args.threads)
            print(f"(b) landing page, gunicorn {args.workers} workers x {args.threads} threads, "
                  f"{args.clients} concurrent clients, {args.seconds:g} s:")
            print(f"    {b['rps']:.0f} req/s   p50 {b['p50']:.1f} ms   p95 {b['p95']:.1f} ms   "
                  f"p99 {b['p99']:.1f} ms   max {b['max']:.1f} ms   errors {b['errors']}")
            print(f"    (targets >= 500 req/s: {'met' if b['rps'] >= 500 else 'MISSED'}; "
                  f"p99 < 100 ms: {'met' if b['p99'] < 100 else 'MISSED'})")


if __name__ == "__main__":
    main()
