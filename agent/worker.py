"""The agent's cycle: settle by STK query, sweep unconfirmed purchases, provision, expire
grants, track and reconcile the router, run queued jobs, heartbeat, prune what strangers'
traffic leaves behind.

Huey-style: ``loop(now)`` does one cycle with ``now`` passed in (tests never patch time),
``run(stop)`` repeats it and waits on ``stop.wait(interval)``, and the signal handlers of
``kibanda agent`` (in :mod:`portal.cli.agent`) only set that flag so a cycle is never cut
in half. No click and no Flask here.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable

from peewee import DatabaseError

from portal import clients, jobs
from portal.errors import KibandaError, RouterError, RouterUnreachable
from portal.ledger import c2b, fair_use, grants, purchases, reconcile, router_state, sms, windows
from portal.models import CallbackRecord, CodeAttempt, Job, LoginFailure, db
from portal.venue import heartbeat, vouchers
from portal.venue import sms as owner_sms
from portal.timeutil import utcnow

from . import sync

log = logging.getLogger("kibanda.agent")

Step = Callable[[datetime], int]
#: At most this many queued jobs per cycle, so settling payments never waits long.
JOBS_PER_CYCLE = 5
#: Sign-in failures and code attempts are kept this long: every limit looks at minutes.
ATTEMPTS_KEPT = timedelta(days=1)


@dataclass
class CycleReport:
    """What one cycle did: a count per step, and the error of each step that failed."""

    done: dict[str, int] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when every step ran to the end."""
        return not self.failed


class Agent:
    """One site's background worker; ``gateway`` and ``mpesa`` default to the settings'."""

    def __init__(self, config, gateway=None, mpesa=None, sms_provider=None):
        self.config = config
        self._gateway = gateway
        self._mpesa = mpesa
        self._sms = sms_provider
        self._owns = {"gateway": gateway is None, "mpesa": mpesa is None,
                      "sms": sms_provider is None}
        #: What the last read of the router said (None: not read yet), for the owner's alert.
        self.router_ok: bool | None = None
        # The cycle, in order: settlement first so a grant it creates is provisioned in the
        # same cycle; queued jobs (voucher pushes) last, as they may take a while.
        # Expiry needs nothing but the router and this clock: no M-Pesa, no uplink.
        # track, fair_use and reconcile share one read of the router, every
        # AGENT_ROUTER_CHECK_SECONDS.
        self.steps: list[tuple[str, Step]] = [
            ("settle", self.settle_pending),
            ("pull_transactions", self.pull_transactions),
            ("sweep_purchases", self.sweep_unconfirmed),
            # windows before provision: a grant sold ahead of its window is enabled and
            # then its device logged in, in the same cycle at the opening.
            ("windows", self.apply_windows),
            ("provision", self.provision_waiting),
            ("remove_expired", self.remove_expired_grants),
            ("track", self.track_router),
            ("fair_use", self.slow_capped),
            ("reconcile", self.reconcile_router),
            ("jobs", self.run_jobs),
            ("sms", self.send_sms),
            ("heartbeat", self.heartbeat),
            ("prune", self.prune),
            ("relay", self.fetch_relayed),
            ("sync", self.send_upstream),
        ]
        self.router_check_seconds = float(config.get("AGENT_ROUTER_CHECK_SECONDS", 30) or 0)
        self.heartbeat_seconds = heartbeat.interval_seconds(config)
        #: This cycle's read of the router (None: not read, or it failed); never kept
        #: across cycles, so no ``.id`` outlives a reboot.
        self._snapshot = None
        self._router_checked_at: datetime | None = None
        #: Vouchers started, users added and users removed per cycle, at most.
        self.router_batch = router_state.BATCH
        self.uploader = sync.Uploader(config)
        self.relay = sync.RelayFetcher(self, self.uploader)
        #: Rows deleted per statement, and statements per table per cycle: a backlog of
        #: millions is worked off over many cycles, never one long write lock.
        self.prune_batch, self.prune_batches = 500, 10
        self.job_handlers: dict[str, Callable[[Job, datetime], None]] = {
            vouchers.PUSH_JOB: self.push_vouchers,
        }

    # --- the clients, created on first use so a misconfigured one only fails its steps ---

    @property
    def gateway(self):
        """The router gateway."""
        if self._gateway is None:
            self._gateway = clients.router_gateway(self.config)
        return self._gateway

    @property
    def mpesa(self):
        """The M-Pesa client."""
        if self._mpesa is None:
            self._mpesa = clients.mpesa_client(self.config)
        return self._mpesa

    @property
    def sms(self):
        """The SMS provider (None when SMS is not set up)."""
        if self._sms is None:
            self._sms = clients.sms_provider(self.config)
        return self._sms

    def close(self) -> None:
        """Close the clients this agent created (not those it was given)."""
        self.uploader.close()
        for name in ("gateway", "mpesa", "sms"):
            client = getattr(self, "_" + name)
            if self._owns[name] and client is not None and hasattr(client, "close"):
                client.close()
            if self._owns[name]:
                setattr(self, "_" + name, None)

    # --- the steps ----------------------------------------------------------------------

    def settle_pending(self, now: datetime) -> int:
        """Ask M-Pesa about pending purchases that are due; returns how many were asked."""
        asked, failure = 0, None
        for purchase_id in purchases.due_for_query(now):
            try:
                purchases.poll_purchase(purchase_id, self.mpesa, now)
            except KibandaError as exc:
                # One purchase M-Pesa cannot answer about must not hold up the others.
                log.warning("purchase %s: STK query failed: %s", purchase_id,
                            exc.operator_message)
                failure = failure or exc
                continue
            asked += 1
        if failure is not None:
            raise failure  # the step failed (``kibanda agent --once`` exits 1), after all were asked
        return asked

    def pull_transactions(self, now: datetime) -> int:
        """Finish C2B payments recorded but never matched, then (every few minutes, where
        set up) settle what Pull Transactions lists; returns how many were handled."""
        finished = c2b.match_new(now)
        if not str(self.config.get("MPESA_PULL_NOMINATED_NUMBER") or "").strip():
            return finished
        return finished + reconcile.pull(self.mpesa, self.config, now)

    def sweep_unconfirmed(self, now: datetime) -> int:
        """Pushes whose sender died become unanswered; purchases M-Pesa never answered
        about for two days go to review (nothing is failed here); returns how many."""
        return purchases.sweep_unconfirmed(now)

    def provision_waiting(self, now: datetime) -> int:
        """Push grants that wait for the router (retry schedule in ``grants``); returns how many tried."""
        return grants.provision_waiting(self.gateway, now)

    def remove_expired_grants(self, now: datetime) -> int:
        """Take grants past their absolute expiry off the router; returns how many."""
        return grants.remove_expired(self.gateway, now)

    def apply_windows(self, now: datetime) -> int:
        """Time windows: log out and disable windowed grants at their window's end, enable
        them at its start (this clock only, no uplink); returns router writes."""
        return windows.apply(self.gateway, now)

    def track_router(self, now: datetime) -> int:
        """Read the router's users, sessions and profiles (when due): vouchers used there
        start their clock, grants their first login, capped grants their data used."""
        self._snapshot = None
        if (self._router_checked_at is not None
                and (now - self._router_checked_at).total_seconds() < self.router_check_seconds):
            return 0
        try:
            self._snapshot = self.gateway.hotspot_snapshot()
        except RouterError as exc:
            # A router that is down is a wait (tried again next cycle), not a failure.
            log.info("router check waits for the router: %s", exc.operator_message)
            self.router_ok = False
            return 0
        self._router_checked_at = now
        self.router_ok = True
        return router_state.track(self._snapshot, now, self.router_batch).changes

    def slow_capped(self, now: datetime) -> int:
        """Fair-use grants at their cap go to their package's slow profile and are logged
        in again (this cycle's read of the router; nothing when it was not read)."""
        if self._snapshot is None:
            return 0
        return fair_use.slow_down(self.gateway, self._snapshot, now, self.router_batch)

    def reconcile_router(self, now: datetime) -> int:
        """Put back missing users and profiles, remove Kibanda's stale users (this cycle's
        read of the router; nothing when it was not read); returns writes confirmed."""
        if self._snapshot is None:
            return 0
        snapshot, self._snapshot = self._snapshot, None
        report = router_state.reconcile(self.gateway, snapshot, now, self.router_batch)
        if report.problems:
            # The step shows as failed (with the first few) until the router is right.
            raise RouterError(f"reconcile: {len(report.problems)} write(s) not applied: "
                              + "; ".join(report.problems[:3]))
        return report.changes

    def heartbeat(self, now: datetime) -> int:
        """Record the heartbeat when due (router health, sessions, backlog); returns 1 if written."""
        if not heartbeat.due(now, self.heartbeat_seconds):
            return 0
        try:
            sessions = len(self.gateway.active_sessions(proplist=".id"))
            router_ok = True
        except RouterError:
            sessions, router_ok = 0, False
        heartbeat.record(now, router_ok=router_ok, active_sessions=sessions)
        return 1

    def run_jobs(self, now: datetime) -> int:
        """Run queued jobs that are due (a few per cycle); returns how many ran."""
        ran = 0
        while ran < JOBS_PER_CYCLE:
            job = jobs.claim(now)
            if job is None:
                break
            ran += 1
            handler = self.job_handlers.get(job.kind)
            if handler is None:
                jobs.fail(job, f"no handler for job kind {job.kind!r}", now)
                continue
            try:
                handler(job, now)
            except RouterUnreachable as exc:
                when = jobs.retry_later(job, exc.operator_message, now)
                log.info("job %s (%s) waits for the router until %s: %s", job.id, job.kind,
                         when, exc.operator_message)
            except KibandaError as exc:
                jobs.fail(job, exc.operator_message, now)
                log.warning("job %s (%s) failed: %s", job.id, job.kind, exc.operator_message)
            else:
                jobs.finish(job, now)
        return ran

    def send_sms(self, now: datetime) -> int:
        """Send queued SMS (receipts first queued with their sale), then queue what is due
        for the owner (reminders, the daily summary, router and uplink alerts) and send
        that too; returns how many were sent. Nothing at all when SMS is not set up."""
        if not owner_sms.record_configuration(self.config):
            return 0
        report = sms.send_due(self.sms, now)
        router_ok, self.router_ok = self.router_ok, None  # each reading is used once
        # The link as the SMS provider found it, or else as the hub did (an enrolled site
        # sends a heartbeat every few minutes, so a quiet site still notices the link).
        uplink_ok = report.reachable if report.reachable is not None else self.uploader.reachable
        self.uploader.reachable = None
        if owner_sms.queue_owner_messages(now, self.config, router_ok=router_ok,
                                          uplink_ok=uplink_ok):
            more = sms.send_due(self.sms, now)
            report.sent += more.sent
        return report.sent

    def push_vouchers(self, job: Job, now: datetime) -> None:
        """A voucher batch an owner made: put its codes on the router (resumable)."""
        data = job.data
        try:
            vouchers.push_batch(data["batch_id"], self.gateway, now, actor=data.get("actor", ""),
                                address=data.get("address", ""))
        except RouterUnreachable:
            # Tried again after a backoff: the page says it still waits for the router.
            vouchers.mark_push_waiting(data["batch_id"])
            raise

    def _pause(self, now: datetime, interval: float) -> float:
        """Seconds until the next cycle: ``interval``, or less when a query is due sooner."""
        try:
            with db.connection_context():
                due = purchases.next_query_at()
        except DatabaseError:  # a sleeping agent must not die of a busy database
            return interval
        if due is None:
            return interval
        return min(interval, max(0.1, (due - now).total_seconds()))

    def prune(self, now: datetime) -> int:
        """Delete old sign-in failures, code attempts and callback records; returns how many.

        Anyone can add these rows without signing in or paying; nothing reads them once
        the limits' windows (minutes) and the review period (``CALLBACK_RETENTION_DAYS``)
        are past.
        """
        days = max(1, int(self.config.get("CALLBACK_RETENTION_DAYS") or 90))
        old = [(LoginFailure, LoginFailure.at < now - ATTEMPTS_KEPT),
               (CodeAttempt, CodeAttempt.at < now - ATTEMPTS_KEPT),
               (CallbackRecord, CallbackRecord.received_at < now - timedelta(days=days))]
        removed = 0
        for model, condition in old:
            for _ in range(self.prune_batches):
                batch = model.select(model.id).where(condition).limit(self.prune_batch)
                count = model.delete().where(model.id.in_(batch)).execute()
                removed += count
                if count < self.prune_batch:
                    break
        return removed

    def send_upstream(self, now: datetime) -> int:
        """Send unsent outbox events to the hub (``agent/sync.py``); returns how many it holds."""
        return self.uploader.send(now)

    def fetch_relayed(self, now: datetime) -> int:
        """Settle M-Pesa messages the hub relayed for this site; returns how many."""
        return self.relay.fetch(now)

    # --- the cycle --------------------------------------------------------------------------

    def loop(self, now: datetime) -> CycleReport:
        """Run one cycle at ``now``; a failing step is logged and the next one still runs."""
        report = CycleReport()
        with db.connection_context():
            for name, step in self.steps:
                try:
                    report.done[name] = step(now)
                except Exception as exc:  # noqa: BLE001 - isolate steps; logged with traceback
                    text = getattr(exc, "operator_message", None) or f"{type(exc).__name__}: {exc}"
                    report.failed[name] = text
                    log.error("agent step %s failed: %s", name, text,
                              exc_info=not isinstance(exc, KibandaError))
        return report

    def run(self, stop: threading.Event, interval: float = 2.0,
            clock: Callable[[], datetime] = utcnow) -> None:
        """Run cycles until ``stop`` is set, ``interval`` seconds apart or sooner when an STK
        query falls due (a customer who just paid waits for that query at a site that
        gets no callbacks)."""
        log.info("agent started (every %.1fs)", interval)
        try:
            while not stop.is_set():
                self.loop(clock())
                if stop.wait(self._pause(clock(), interval)):
                    break
        finally:
            self.close()
            log.info("agent stopped")
