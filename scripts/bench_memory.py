"""The appliance's memory: proportional set size (PSS) of the portal and the agent.

A demo site (emulated router and M-Pesa, four packages) is seeded; then ``kibanda run``
starts the portal (gunicorn, ``--workers`` workers x ``--threads`` threads) and the
agent, as the image does. PSS comes from ``/proc/<pid>/smaps_rollup`` (shared pages
counted once, split between the processes that share them): the gunicorn master, every
worker and the agent (the figure the target is about), and ``kibanda run`` itself beside
it; first idle, then under the landing-page load of ``scripts/bench_purchase.py`` (its
client processes, not counted).

``--as-image`` hides from the two processes the packages this machine has but the
appliance image does not install (``psycopg``, the hub's PostgreSQL driver, which peewee
imports whenever it finds it: about 10 MB per process).

Run ``python scripts/bench_memory.py [--workers 2] [--clients 50] [--seconds 10]
[--as-image]``. Target: under 100 MB in total. Nothing here is asserted by the tests.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import requests  # noqa: E402
from bench_purchase import demo_site, landing_load, stop_process, wait_listening  # noqa: E402

from portal.cli.demo_site import free_port  # noqa: E402

#: Installed here for the hub, absent from the appliance image (pyproject's dependencies).
NOT_IN_IMAGE = ("psycopg", "psycopg2", "psycopg_c", "psycopg_binary")
_HIDE = f"""import sys
class _NotInImage:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {NOT_IN_IMAGE!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}")
sys.meta_path.insert(0, _NotInImage())
"""
KIBANDA = [sys.executable, "-c", "from portal.cli import main; main(prog_name='kibanda')"]
TARGET_MB = 100


def pss_kb(pid: int) -> int:
    """The process's proportional set size in kB (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as rollup:
            for line in rollup:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return 0
    return 0


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (gunicorn's workers)."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        found += [int(x) for x in task.read_text().split()]
    return found


def sample(supervisor: int) -> dict:
    """PSS in MB of the gunicorn master, its workers (together), the agent and the supervisor."""
    portal = agent = 0
    # Both are forked from the supervisor (same command line): the portal is the one with
    # workers of its own.
    for child in children(supervisor):
        if children(child):
            portal = child
        else:
            agent = child
    workers = children(portal) if portal else []
    result = {"master": pss_kb(portal) / 1024, "workers": sum(pss_kb(w) for w in workers) / 1024,
              "agent": pss_kb(agent) / 1024, "n_workers": len(workers),
              "supervisor": pss_kb(supervisor) / 1024}
    result["total"] = result["master"] + result["workers"] + result["agent"]
    return result


def line(name: str, figures: dict) -> str:
    return (f"{name:8} master {figures['master']:5.1f} MB + {figures['n_workers']} workers "
            f"{figures['workers']:5.1f} MB + agent {figures['agent']:5.1f} MB = "
            f"{figures['total']:5.1f} MB (target < {TARGET_MB} MB: "
            f"{'met' if figures['total'] < TARGET_MB else 'MISSED'}); kibanda run itself "
            f"{figures['supervisor']:4.1f} MB, all together "
            f"{figures['total'] + figures['supervisor']:5.1f} MB")


def main() -> None:
    """Seed a site, start portal and agent, print PSS idle and under load."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--idle", type=float, default=5.0, help="Seconds to settle first.")
    parser.add_argument("--as-image", action="store_true",
                        help="Hide packages the image does not install (psycopg).")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory(prefix="kibanda-mem-") as tmp, \
            demo_site(Path(tmp), run_agent=False) as site:
        site.seed()
        instance = str(site.instance)
        path = site.customer_url(mac="AA:BB:CC:00:00:01", ip="10.5.50.23").split("/", 3)[3]
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("KIBANDA_")}
        if args.as_image:
            hide = Path(tmp) / "as-image"
            hide.mkdir()
            (hide / "sitecustomize.py").write_text(_HIDE)
            env["PYTHONPATH"] = os.pathsep.join([str(hide), str(ROOT)])
            print(f"as the image: {', '.join(NOT_IN_IMAGE)} hidden")
        supervisor = subprocess.Popen(
            [*KIBANDA, "--instance", instance, "run", "--host", "127.0.0.1", "--port", str(port),
             "--workers", str(args.workers), "--threads", str(args.threads)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_listening(port)
            url = f"http://127.0.0.1:{port}/{path}"
            for _ in range(20):  # every worker has rendered the page once
                assert requests.get(url, timeout=10).status_code == 200
            time.sleep(args.idle)
            idle = sample(supervisor.pid)
            print(line("idle", idle))
            peak: dict = {"total": 0}
            stop = threading.Event()

            def watch() -> None:
                nonlocal peak
                while not stop.wait(0.5):
                    now = sample(supervisor.pid)
                    if now["total"] > peak["total"]:
                        peak = now
            watcher = threading.Thread(target=watch, daemon=True)
            watcher.start()
            results = landing_load(url, args.clients, args.seconds, warmup=1.0)
            stop.set()
            watcher.join()
            requests_done = sum(len(lat) for lat, _err in results)
            print(line("loaded", peak) + f"  [peak; {requests_done / args.seconds:.0f} req/s, "
                  f"{args.clients} clients]")
            after = sample(supervisor.pid)
            print(line("after", after))
        finally:
            stop_process(supervisor, timeout=40)


if __name__ == "__main__":
    main()
