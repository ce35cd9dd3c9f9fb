"""Chaos run: many purchases while the appliance, the router and M-Pesa fail underneath.

Starts the emulated router and the emulated M-Pesa (in this process, so it can fault them),
the portal under gunicorn (``kibanda serve``, 2 workers) and the agent (``kibanda agent``)
as processes of their own, then runs ``--purchases`` purchases through ``POST /buy`` from
distinct devices with a mix of outcomes while, every few seconds, one of these happens:
the portal or the agent is killed with SIGKILL (and restarted a moment later), the router
reboots or refuses logins, M-Pesa's queries or pushes fail, or a delivered callback is
replayed. Then everything is restored, the agent is given time to settle, and it prints,
from M-Pesa's own records against the appliance's database:

    successful at M-Pesa, credited once, lost, credited twice, granted without payment,
    stuck (still waiting for an answer), 5xx answers seen by customers or by Daraja.

Target: 0 lost, 0 twice, 0 unpaid, 0 stuck, 0 5xx. Imports nothing from tests/.
Run ``python scripts/chaos.py [--purchases 1000] [--concurrency 16] [--seed 1]``.

``--c2b 1000`` runs the C2B reconciliation instead: that many payments from the M-Pesa
menu against waiting purchases whose prompt never came (80 % with the right account code,
the rest to unknown accounts, some at no package's price), 10 % more confirmations as
duplicates re-sent by "Safaricom", a few confirmations lost and the portal killed now
and then; then the agent's Pull Transactions catches up. It prints, from M-Pesa's own
records against the database, that every payment is credited once or in review.
"""
from __future__ import annotations

import argparse
import logging
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402

from portal.cli.demo_site import free_port, listening  # noqa: E402

#: What the emulated customers do, by share: most pay, some cancel or fail.
FAILING_PHONES = ["254700001032", "254700002001", "254700000001", "254700001037",
                  "254700001019"]
SUCCESS_SHARE = 0.8
OPEN = ("pushing", "pending", "unanswered")


class Appliance:
    """The portal (gunicorn) and the agent as processes that can be killed and restarted."""

    def __init__(self, instance: Path, port: int):
        self.instance = instance
        self.port = port
        self.portal: subprocess.Popen | None = None
        self.agent: subprocess.Popen | None = None
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("KIBANDA_")}
        self.env["PYTHONPATH"] = str(ROOT)
        self.log = open(instance.parent / "appliance.log", "ab")

    def _spawn(self, *args: str) -> subprocess.Popen:
        # Its own process group: SIGKILL reaches gunicorn's workers as well as its master.
        return subprocess.Popen(
            [sys.executable, "-c", "from portal.cli import main; main(prog_name='kibanda')",
             "--instance", str(self.instance), *args],
            env=self.env, stdout=self.log, stderr=self.log, start_new_session=True)

    def start_portal(self) -> None:
        """Start ``kibanda serve`` and wait until it listens."""
        self.portal = self._spawn("serve", "--host", "127.0.0.1", "--port", str(self.port),
                                  "--workers", "2", "--no-access-log")
        deadline = time.monotonic() + 30
        while not listening(self.port):
            if time.monotonic() > deadline:
                raise RuntimeError("the portal did not start; see appliance.log")
            time.sleep(0.05)

    def start_agent(self) -> None:
        """Start ``kibanda agent``."""
        self.agent = self._spawn("agent", "--interval", "1")

    @staticmethod
    def _kill(process: subprocess.Popen | None) -> None:
        if process is None:
            return
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()

    def kill_portal(self) -> None:
        """SIGKILL the portal's master and workers."""
        self._kill(self.portal)
        self.portal = None

    def kill_agent(self) -> None:
        """SIGKILL the agent."""
        self._kill(self.agent)
        self.agent = None

    def stop(self) -> None:
        """Kill both (the run is over)."""
        self.kill_portal()
        self.kill_agent()
        self.log.close()


def seed(instance: Path, settings: dict) -> None:
    """The instance folder, its settings, four packages and their router profiles."""
    from portal.cli.demo_site import DEMO_PACKAGES
    from portal.clients import router_gateway
    from portal.config import ensure_instance, write_config_values
    from portal.models import create_schema, db, init_db
    from portal.venue.packages import create_package, sync_profile

    ensure_instance(instance)
    write_config_values(instance, settings)
    init_db(str(instance / "kibanda.db"))
    create_schema()
    with db.connection_context(), router_gateway(settings) as gateway:
        for order, fields in enumerate(DEMO_PACKAGES):
            sync_profile(create_package(actor="chaos", sort_order=order, **fields), gateway)


class Customers:
    """Phones buying through the portal's pages; counts what they were answered."""

    def __init__(self, url: str, router, rng: random.Random):
        self.url = url
        self.router = router
        self.rng = rng
        self.answers: Counter = Counter()
        self.server_errors: list[str] = []
        self.lock = threading.Lock()

    def _note(self, what: str, status: int | None = None, where: str = "") -> None:
        with self.lock:
            self.answers[what] += 1
            if status is not None and status >= 500:
                self.server_errors.append(f"{status} {where}")

    def buy(self, i: int) -> None:
        """One customer: open the landing page, buy, watch the page a little, leave."""
        with self.lock:
            success = self.rng.random() < SUCCESS_SHARE
            phone = (f"0712{i:06d}" if success else self.rng.choice(FAILING_PHONES))
            package = str(self.rng.randint(1, 4))
            polls = self.rng.randint(0, 3)
        mac = f"02:00:{i // 65536:02X}:{i // 256 % 256:02X}:{i % 256:02X}:01"
        ip = f"10.5.{50 + i // 250}.{1 + i % 250}"
        if hasattr(self.router, "device_joins"):
            self.router.device_joins(ip, mac)  # the phone got its DHCP lease on the hotspot
        device = {"mac": mac, "ip": ip, "link-login-only": "http://wifi.kibanda.lan/login"}
        with requests.Session() as phone_browser:
            for _tap in range(20):  # the portal may be down: the customer taps again
                try:
                    landing = phone_browser.get(self.url + "/", params=device, timeout=10)
                    answer = phone_browser.post(
                        self.url + "/buy", data={"package": package, "phone": phone, **device},
                        timeout=40, allow_redirects=False)
                except requests.RequestException:
                    self._note("portal unreachable, tapped again")
                    time.sleep(1)
                    continue
                self._note(f"landing {landing.status_code}", landing.status_code, "GET /")
                break
            else:
                self._note("gave up")
                return
            self._note(f"buy {answer.status_code}", answer.status_code, "POST /buy")
            if answer.status_code != 303:
                return
            page = self.url + answer.headers["Location"]
            for _ in range(polls):
                time.sleep(2)
                try:
                    state = phone_browser.get(page + ".json", timeout=10)
                except requests.RequestException:
                    continue
                self._note(f"status {state.status_code}", state.status_code, "GET status")


class Chaos(threading.Thread):
    """Every few seconds, one fault; records what it did."""

    def __init__(self, appliance: Appliance, router, daraja, rng: random.Random,
                 every: float):
        super().__init__(name="chaos", daemon=True)
        self.appliance, self.router, self.daraja = appliance, router, daraja
        self.rng, self.every = rng, every
        self.stop_event = threading.Event()
        self.done: Counter = Counter()

    def run(self) -> None:
        # Kills are the point: they come three times as often as each other fault.
        actions = {self.kill_portal: 3, self.kill_agent: 3, self.reboot_router: 1,
                   self.refuse_router_logins: 1, self.cut_queries: 1, self.drop_pushes: 1,
                   self.replay_callback: 1}
        while not self.stop_event.wait(self.rng.uniform(0.5, 1.5) * self.every):
            action = self.rng.choices(list(actions), weights=list(actions.values()))[0]
            action()
            self.done[action.__name__] += 1

    def kill_portal(self) -> None:
        self.appliance.kill_portal()
        time.sleep(self.rng.uniform(0.2, 2.0))
        self.appliance.start_portal()

    def kill_agent(self) -> None:
        self.appliance.kill_agent()
        time.sleep(self.rng.uniform(0.2, 3.0))
        self.appliance.start_agent()

    def reboot_router(self) -> None:
        self.router.reboot()

    def refuse_router_logins(self) -> None:
        self.router.refuse_logins = True
        time.sleep(self.rng.uniform(1, 4))
        self.router.refuse_logins = False

    def cut_queries(self) -> None:
        self.daraja.fail_next("busy", n=self.rng.randint(5, 40), on="query")

    def drop_pushes(self) -> None:
        # The push is taken, then the connection closes: its answer never arrives.
        self.daraja.fail_next("drop", n=self.rng.randint(1, 3), on="push")

    def replay_callback(self) -> None:
        """POST a callback M-Pesa already delivered once more (a replay)."""
        sent = [t for t in self.daraja.transactions if t["callbacks_sent"]]
        if not sent:
            return
        txn = self.rng.choice(sent)
        body = {"Body": {"stkCallback": {
            "MerchantRequestID": txn["merchant_request_id"],
            "CheckoutRequestID": txn["checkout_request_id"], "ResultCode": txn["result_code"],
            "ResultDesc": "replayed"}}}
        if txn["result_code"] == 0:
            body["Body"]["stkCallback"]["CallbackMetadata"] = {"Item": [
                {"Name": "Amount", "Value": float(txn["amount"])},
                {"Name": "MpesaReceiptNumber", "Value": txn["receipt"]},
                {"Name": "PhoneNumber", "Value": int(txn["phone"])}]}
        try:
            requests.post(txn["callback_url"], json=body, timeout=10)
        except requests.RequestException:
            pass


def settle(instance: Path, timeout: float) -> None:
    """Wait until no purchase waits for M-Pesa any more (or ``timeout`` seconds)."""
    from portal.models import Purchase, db, init_db

    init_db(str(instance / "kibanda.db"))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with db.connection_context():
            waiting = Purchase.select().where(Purchase.status.in_(OPEN)).count()
        if not waiting:
            return
        time.sleep(2)


def audit(instance: Path, daraja, customers: Customers) -> dict:
    """M-Pesa's records against the appliance's database."""
    from portal.models import Grant, Purchase, db, init_db

    init_db(str(instance / "kibanda.db"))
    with db.connection_context():
        by_reference = {p.reference: p for p in Purchase.select()}
        grants = Counter(g.purchase_id for g in Grant.select().where(Grant.source == "mpesa"))
        open_purchases = [p for p in by_reference.values() if p.status in OPEN]
    def reference(txn: dict) -> str:
        return txn["callback_url"].rstrip("/").rsplit("/", 1)[1]

    paid_at_mpesa = {reference(t) for t in daraja.transactions if t["result_code"] == 0}
    figures = Counter()
    figures["granted without payment"] = sum(
        1 for purchase in by_reference.values()
        if grants[purchase.id] and purchase.reference not in paid_at_mpesa)
    for ref in paid_at_mpesa:
        figures["successful at M-Pesa"] += 1
        purchase = by_reference.get(ref)
        if purchase is None:
            figures["lost"] += 1
        elif grants[purchase.id] > 1:
            figures["credited twice"] += 1
        elif grants[purchase.id] == 1 and purchase.status == "paid":
            figures["credited once"] += 1
        elif purchase.status in OPEN:
            figures["stuck"] += 1
        else:
            figures["lost"] += 1
    figures["still waiting (any outcome)"] = len(open_purchases)
    callback_5xx = sum(1 for t in daraja.transactions for s in t["callback_statuses"] if s >= 500)
    figures["5xx"] = len(customers.server_errors) + callback_5xx
    return figures


def c2b_run(args) -> None:
    """The C2B reconciliation run (``--c2b N``); prints its figures."""
    from portal.ledger.c2b import ACCOUNT_ALPHABET, unused_account_code
    from portal.models import C2BPayment, Grant, Package, Purchase, db, init_db
    from portal.sim.daraja import DarajaSim
    from portal.sim.daraja_rules import SANDBOX_PASSKEY, SANDBOX_SHORTCODE
    from portal.sim.routeros import RouterSim

    rng = random.Random(args.seed)
    folder = Path(tempfile.mkdtemp(prefix="kibanda-c2b-"))
    router = RouterSim(password=secrets.token_urlsafe(12), clock="real").start()
    daraja = DarajaSim(decision_delay=3600).start()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    instance = folder / "instance"
    settings = {
        "SITE_NAME": "C2B Cafe", "ROUTER_HOST": "127.0.0.1", "ROUTER_PORT": router.port,
        "ROUTER_USER": router.user, "ROUTER_PASSWORD": router.password, "ROUTER_TIMEOUT": 3.0,
        "MPESA_BASE_URL": daraja.base_url, "MPESA_CONSUMER_KEY": daraja.consumer_key,
        "MPESA_CONSUMER_SECRET": daraja.consumer_secret, "MPESA_SHORTCODE": SANDBOX_SHORTCODE,
        "MPESA_PASSKEY": SANDBOX_PASSKEY, "PORTAL_URL": url, "CALLBACK_BASE_URL": url,
        "MPESA_PULL_NOMINATED_NUMBER": "254708374149", "MPESA_PULL_EVERY_MINUTES": 1}
    seed(instance, settings)
    secret = (instance / "callback_secret").read_text().strip()
    confirmation_url = f"{url}/mpesa/c2b/confirmation/{secret}"
    daraja.c2b.register({"ShortCode": SANDBOX_SHORTCODE, "ResponseType": "Completed",
                         "ConfirmationURL": confirmation_url,
                         "ValidationURL": f"{url}/mpesa/c2b/validation/{secret}"}, 2)
    # Waiting purchases whose prompt never reached the phone (no answer to the push).
    with db.connection_context():
        prices = [p.price for p in Package.select()]
        packages = list(Package.select())
        waiting = []
        for i in range(int(args.c2b * 0.8)):
            package = rng.choice(packages)
            waiting.append(Purchase.create(
                phone=f"2547{i:08d}", package=package, amount=package.price,
                mac=f"02:01:{i // 65536:02X}:{i // 256 % 256:02X}:{i % 256:02X}:01",
                ip=f"10.6.{i // 250}.{1 + i % 250}", status="unanswered",
                account_code=unused_account_code()))
    plan = [(p.phone, p.amount, p.account_code) for p in waiting]
    for i in range(args.c2b - len(plan)):  # unknown accounts: some at a price, some not
        account = rng.choice(["WIFI", "".join(rng.choice(ACCOUNT_ALPHABET) for _ in range(5))])
        plan.append((f"2541{i:08d}", rng.choice(prices + [30]), account))
    rng.shuffle(plan)
    appliance = Appliance(instance, port)
    made: list[dict] = []
    duplicates = Counter()
    lock = threading.Lock()

    def pay(item) -> None:
        phone, amount, account = item
        with lock:
            lost = rng.random() < 0.02
            pause = rng.uniform(0, 0.4)
        time.sleep(pause)  # customers pay over a minute or so, not all at once
        payment = daraja.pay_from_menu(phone, amount, account,
                                       confirmation="lost" if lost else "sent")
        with lock:
            made.append(payment)
            again = rng.random() < 0.10
        if again:  # Safaricom sends the same confirmation once more
            try:
                answer = requests.post(confirmation_url, json=daraja.c2b.body_of(payment),
                                       timeout=10)
                duplicates[answer.status_code] += 1
            except requests.RequestException:
                duplicates["portal down"] += 1

    started = time.monotonic()
    done = threading.Event()
    kills = Counter()

    def kill_now_and_then() -> None:
        # SIGKILL the portal while confirmations are in flight: they are lost for good
        # (the emulator does not retry), and Pull Transactions must find them.
        killer = random.Random(args.seed + 1)
        while not done.wait(killer.uniform(0.5, 1.5) * args.fault_every):
            appliance.kill_portal()
            kills["portal"] += 1
            time.sleep(killer.uniform(0.2, 1.0))
            appliance.start_portal()

    try:
        appliance.start_portal()
        appliance.start_agent()
        chaos = threading.Thread(target=kill_now_and_then, daemon=True)
        chaos.start()
        with ThreadPoolExecutor(args.concurrency) as pool:
            list(pool.map(pay, plan))
        done.set()
        chaos.join()
        if appliance.portal is None:
            appliance.start_portal()
        sent = time.monotonic() - started
        # Pull Transactions catches what never arrived (the agent pulls every minute;
        # here it is asked at once).
        pulled = subprocess.run(
            [sys.executable, "-c", "from portal.cli import main; main(prog_name='kibanda')",
             "--instance", str(instance), "mpesa", "pull"], env=appliance.env,
            capture_output=True, text=True, timeout=600)
        if pulled.returncode:
            print("pull failed: " + pulled.stderr.strip()[:300])
    finally:
        appliance.stop()
        daraja.stop()
        router.stop()
    init_db(str(instance / "kibanda.db"))
    with db.connection_context():
        rows = {p.trans_id: p for p in C2BPayment.select()}
        receipts = {p.receipt: p for p in Purchase.select().where(Purchase.receipt.is_null(False))}
        grants = Counter(g.purchase_id for g in Grant.select())
        codes = {p.account_code: p.id for p in waiting}
    figures = Counter()
    for payment in made:
        figures["payments from the menu"] += 1
        if payment["confirmation_status"] != 200:
            figures["confirmation lost or refused"] += 1
        row = rows.get(payment["receipt"])
        purchase = receipts.get(payment["receipt"])
        if row is None and purchase is None:
            figures["lost"] += 1
        elif row is not None and row.status == "review":
            figures["in review"] += 1
        elif purchase is not None and grants[purchase.id] == 1:
            figures["credited once"] += 1
            if codes.get(payment["account"]) == purchase.id:
                figures["  to its waiting purchase"] += 1
            else:
                figures["  sold by amount"] += 1
            if row is not None and row.via == "pull":
                figures["  recovered by Pull"] += 1
        elif purchase is not None and grants[purchase.id] > 1:
            figures["credited twice"] += 1
        else:
            figures["lost"] += 1
    figures["duplicates re-sent"] = sum(duplicates.values())
    figures["  reached the portal"] = duplicates[200]
    figures["  counted on a payment already recorded"] = sum(r.copies - 1 for r in rows.values())
    paid_receipts = {p["receipt"] for p in made}
    figures["granted without payment"] = sum(
        1 for receipt, p in receipts.items() if receipt not in paid_receipts and grants[p.id])
    print(f"{args.c2b} C2B payments, concurrency {args.concurrency}, seed {args.seed}: "
          f"sent in {sent:.0f} s, portal killed {kills['portal']} times (every "
          f"~{args.fault_every:g} s)")
    for name in ("payments from the menu", "confirmation lost or refused", "credited once",
                 "  to its waiting purchase", "  sold by amount", "  recovered by Pull",
                 "in review", "lost", "credited twice", "granted without payment",
                 "duplicates re-sent", "  reached the portal",
                 "  counted on a payment already recorded"):
        print(f"  {name:42} {figures[name]}")
    accounted = figures["credited once"] + figures["in review"]
    bad = figures["lost"] + figures["credited twice"] + figures["granted without payment"]
    print(f"accounted for {accounted} of {figures['payments from the menu']}; target every one "
          f"credited once or in review: " + ("met" if not bad and accounted == len(made)
                                            else "MISSED"))
    if args.keep:
        print(f"run folder kept: {folder}")
    else:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    """Run the chaos and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--purchases", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--fault-every", type=float, default=6.0,
                        help="Mean seconds between faults.")
    parser.add_argument("--decision-delay", type=float, default=3.0,
                        help="Seconds the emulated customer takes to answer the prompt.")
    parser.add_argument("--settle-seconds", type=float, default=300.0)
    parser.add_argument("--keep", action="store_true", help="Keep the run's folder.")
    parser.add_argument("--c2b", type=int, default=0,
                        help="Run the C2B reconciliation with this many payments instead.")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    if args.c2b:
        c2b_run(args)
        return
    from portal.sim.daraja import DarajaSim
    from portal.sim.daraja_rules import SANDBOX_PASSKEY, SANDBOX_SHORTCODE
    from portal.sim.routeros import RouterSim

    rng = random.Random(args.seed)
    folder = Path(tempfile.mkdtemp(prefix="kibanda-chaos-"))
    router = RouterSim(password=secrets.token_urlsafe(12), clock="real").start()
    daraja = DarajaSim(decision_delay=args.decision_delay).start()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    instance = folder / "instance"
    seed(instance, {
        "SITE_NAME": "Chaos Cafe", "ROUTER_HOST": "127.0.0.1", "ROUTER_PORT": router.port,
        "ROUTER_USER": router.user, "ROUTER_PASSWORD": router.password, "ROUTER_TIMEOUT": 3.0,
        "MPESA_BASE_URL": daraja.base_url, "MPESA_CONSUMER_KEY": daraja.consumer_key,
        "MPESA_CONSUMER_SECRET": daraja.consumer_secret, "MPESA_SHORTCODE": SANDBOX_SHORTCODE,
        "MPESA_PASSKEY": SANDBOX_PASSKEY, "MPESA_READ_TIMEOUT": 10.0,
        "PORTAL_URL": url, "CALLBACK_BASE_URL": url})
    appliance = Appliance(instance, port)
    customers = Customers(url, router, rng)
    chaos = Chaos(appliance, router, daraja, random.Random(args.seed + 1), args.fault_every)
    started = time.monotonic()
    try:
        appliance.start_portal()
        appliance.start_agent()
        chaos.start()
        with ThreadPoolExecutor(args.concurrency) as pool:
            list(pool.map(customers.buy, range(args.purchases)))
        chaos.stop_event.set()
        chaos.join()
        # Everything back to normal, then let the agent finish what is open.
        router.refuse_logins = False
        if appliance.portal is None:
            appliance.start_portal()
        if appliance.agent is None:
            appliance.start_agent()
        bought = time.monotonic() - started
        settle(instance, args.settle_seconds)
        figures = audit(instance, daraja, customers)
    finally:
        appliance.stop()
        daraja.stop()
        router.stop()
    print(f"{args.purchases} customers, concurrency {args.concurrency}, seed {args.seed}: "
          f"bought in {bought:.0f} s, settled in {time.monotonic() - started - bought:.0f} s")
    print("faults: " + ", ".join(f"{name} {n}" for name, n in sorted(chaos.done.items())))
    print("customers were answered: " + ", ".join(
        f"{name} {n}" for name, n in sorted(customers.answers.items())))
    for name in ("successful at M-Pesa", "credited once", "lost", "credited twice",
                 "granted without payment", "stuck", "still waiting (any outcome)", "5xx"):
        print(f"  {name:30} {figures[name]}")
    bad = sum(figures[k] for k in ("lost", "credited twice", "granted without payment",
                                   "stuck", "5xx"))
    print("target 0 lost, 0 twice, 0 unpaid, 0 stuck, 0 5xx: " + ("met" if not bad else "MISSED"))
    if customers.server_errors:
        print("5xx seen: " + "; ".join(customers.server_errors[:5]))
    if args.keep:
        print(f"run folder kept: {folder}")
    else:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
