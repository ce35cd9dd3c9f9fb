"""Benchmark: 1,000 hotspot users one call at a time versus pipelined, over the emulator.

Run ``python scripts/bench_router.py [--users N] [--latency-ms MS]``. Each mode gets a
fresh RouterOS emulator with the given latency on every reply, and adds the same users
through ``RouterGateway``: ``add_user`` in a loop (one round trip per user, the way
existing hotspot tools do it) and ``bulk_add_users`` (tagged, pipelined sentences).
The emulator runs in its own process, as a router is its own machine: in this process
it would share the interpreter lock with the client being measured.
"""
from __future__ import annotations

import argparse
import pathlib
import subprocess
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from portal.routeros import RouterGateway  # noqa: E402
from portal.sim.routeros import RouterSim  # noqa: E402


def vouchers(count: int) -> list[dict]:
    """``count`` numeric voucher users for the default profile, one hour each."""
    return [{"name": f"{400000 + i}", "password": f"{(i * 7919) % 10000:04d}",
             "profile": "default", "limit_uptime": 3600, "comment": "bench"}
            for i in range(count)]


def one_by_one(gateway: RouterGateway, items: list[dict]) -> None:
    """One ``add_user`` round trip per voucher."""
    for item in items:
        gateway.add_user(item["name"], item["password"], item["profile"],
                         limit_uptime=item["limit_uptime"], comment=item["comment"])


def pipelined(gateway: RouterGateway, items: list[dict]) -> None:
    """All vouchers in one pipelined bulk call; every one must be created."""
    results = gateway.bulk_add_users(items)
    failed = [r for r in results if r.status != "created"]
    if failed:
        raise SystemExit(f"bulk add did not create {len(failed)} users: {failed[0]}")


def serve(latency_ms: float) -> None:
    """Child process: run an emulator, print its port, stop when stdin closes."""
    with RouterSim(latency_ms=latency_ms) as sim:
        print(sim.port, flush=True)
        sys.stdin.read()


def measure(mode, items: list[dict], latency_ms: float) -> float:
    """Seconds taken by ``mode`` on a fresh emulator (connection already logged in)."""
    child = subprocess.Popen([sys.executable, __file__, "--serve", str(latency_ms)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        port = int(child.stdout.readline())
        with RouterGateway("127.0.0.1", port, name="bench", timeout=10) as gateway:
            gateway.version()  # log in first: the benchmark times the users, not the login
            started = time.perf_counter()
            mode(gateway, items)
            elapsed = time.perf_counter() - started
            on_router = len(gateway.users(proplist=".id"))
    finally:
        child.stdin.close()
        child.wait(timeout=30)
        child.stdout.close()
    if on_router != len(items):
        raise SystemExit(f"{mode.__name__}: router has {on_router} users, expected {len(items)}")
    return elapsed


def main(argv=None) -> int:
    """Run both modes and print users per second and the speed-up."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=2.0)
    parser.add_argument("--serve", type=float, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve is not None:
        serve(args.serve)
        return 0
    items = vouchers(args.users)
    print(f"{args.users} hotspot users, emulator latency {args.latency_ms:g} ms per reply")
    serial = measure(one_by_one, items, args.latency_ms)
    print(f"  add_user loop   : {serial:7.3f} s  {args.users / serial:8.0f} users/s")
    bulk = measure(pipelined, items, args.latency_ms)
    print(f"  bulk_add_users  : {bulk:7.3f} s  {args.users / bulk:8.0f} users/s")
    print(f"  pipelined is {serial / bulk:.1f}x faster "
          f"(target >= 10x, and {args.users} users under 1.5 s: "
          f"{'met' if serial / bulk >= 10 and bulk < 1.5 else 'NOT met'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
