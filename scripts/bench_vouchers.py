#!/usr/bin/env python3
"""Benchmark: make and push 5,000 vouchers to the RouterOS emulator at 2 ms per reply.

Prints the seconds for each step and codes per second. Target: under 10 s in all.
Usage: python scripts/bench_vouchers.py [--count N] [--latency-ms MS] [--chunk N]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from portal.models import Voucher, create_schema, db, init_db  # noqa: E402
from portal.venue.packages import create_package  # noqa: E402
from portal.routeros import RouterGateway  # noqa: E402
from portal.sim.routeros import RouterSim  # noqa: E402
from portal.timeutil import utcnow  # noqa: E402
from portal.venue.vouchers import PUSH_CHUNK, create_batch, push_batch  # noqa: E402

TARGET_SECONDS = 10.0


def main() -> int:
    """Run the benchmark; exit status 1 when it misses the target."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--latency-ms", type=float, default=2.0)
    parser.add_argument("--chunk", type=int, default=PUSH_CHUNK)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder, RouterSim(port=0, latency_ms=args.latency_ms) as sim:
        init_db(str(Path(folder) / "bench.db"))
        create_schema()
        with db.connection_context(), RouterGateway("127.0.0.1", sim.port, "admin", "",
                                                    timeout=10) as gateway:
            package = create_package(name_en="1 day", price=50, validity="1d",
                                     rate_limit="2M/5M")
            start = time.perf_counter()
            batch = create_batch(package, args.count, utcnow(), "bench")
            made = time.perf_counter()
            counts = push_batch(batch.id, gateway, utcnow(), chunk=args.chunk)
            pushed = time.perf_counter()
            on_router = sum(1 for row in sim.rows("/ip/hotspot/user")
                            if row.get("comment") == f"kibanda voucher batch {batch.id}")
            in_db = Voucher.select().where(Voucher.batch == batch.id).count()
    total = pushed - start
    print(f"vouchers:           {args.count} (chunks of {args.chunk}, "
          f"{args.latency_ms:g} ms router latency per reply)")
    print(f"generate + store:   {made - start:6.2f} s")
    print(f"push to router:     {pushed - made:6.2f} s  ({args.count / (pushed - made):,.0f} codes/s)")
    print(f"total:              {total:6.2f} s  ({args.count / total:,.0f} codes/s)")
    print(f"in database: {in_db}, on router: {on_router}, marked on router: {counts.on_router}, "
          f"failed: {counts.failed}")
    ok = total < TARGET_SECONDS and on_router == counts.on_router == args.count
    print(f"target under {TARGET_SECONDS:g} s: {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
