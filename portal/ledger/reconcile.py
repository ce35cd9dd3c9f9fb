"""Reconciliation with M-Pesa's own records: Pull Transactions, and receipts customers type.

Most sites have no public address, so no C2B confirmation (and often no STK callback)
ever reaches them. Every few minutes the agent asks Pull Transactions for the payments
since its last successful pull (with an overlap; at most 48 hours back) and hands each
one to :func:`.c2b.record_confirmation`, exactly as a confirmation: a receipt already
known changes nothing, an STK payment whose callback and queries were all lost pays its
purchase, a query-only credit gets its receipt, and a payment made from the menu while
the site was offline becomes a sale.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any, Mapping

from ..errors import KibandaError
from ..models import Setting
from ..mpesa import PulledTransaction
from ..timeutil import nairobi_timestamp, utcnow
from . import c2b

log = logging.getLogger(__name__)

#: Each pull starts this long before the last successful one ended (late records).
OVERLAP = timedelta(minutes=10)
HORIZON = timedelta(hours=48)
AHEAD = timedelta(minutes=1)
_LAST_PULL = "mpesa.pull.last_success"
_LAST_TRY = "mpesa.pull.last_attempt"
_REGISTERED = "mpesa.pull.registered"


def as_confirmation(found: PulledTransaction) -> dict:
    """A Pull record in the shape of a C2B confirmation (reference sections 5 and 7)."""
    when = nairobi_timestamp(found.at) if found.at else ""
    return {"TransactionType": found.kind, "TransID": found.receipt, "TransTime": when,
            "TransAmount": found.amount, "BillRefNumber": found.bill_reference,
            "MSISDN": found.msisdn, "FirstName": ""}


def _stored(key: str) -> str | None:
    row = Setting.get_or_none(Setting.key == key)
    return row.value if row else None


def _store(key: str, value: str, now: datetime) -> None:
    (Setting.insert(key=key, value=value, encrypted=False, updated_at=now)
     .on_conflict_replace().execute())


def last_pull(key: str = _LAST_PULL) -> datetime | None:
    """When the last pull that succeeded ended (None: never)."""
    text = _stored(key)
    try:
        return datetime.fromisoformat(text) if text else None
    except ValueError:
        return None


def settle_pulled(found: list[PulledTransaction], now: datetime) -> dict[str, int]:
    """Hand each record to the one confirmation path; returns counts per outcome."""
    counts: dict[str, int] = {}
    for record in found:
        outcome = c2b.record_confirmation(as_confirmation(record), via="pull", now=now).outcome
        counts[outcome] = counts.get(outcome, 0) + 1
    return counts


def pull(mpesa, config: Mapping[str, Any], now: datetime, *, force: bool = False) -> int:
    """Pull the payments since the last pull and settle them, when due (or ``force``);
    returns how many records were read. Raises KibandaError when M-Pesa cannot be asked.

    Off (0) without ``MPESA_PULL_NOMINATED_NUMBER``: Pull needs the shortcode registered
    with the number nominated on the M-Pesa portal, done here once.
    """
    nominated = str(config.get("MPESA_PULL_NOMINATED_NUMBER") or "").strip()
    if not nominated:
        return 0
    every = timedelta(minutes=max(1, int(config.get("MPESA_PULL_EVERY_MINUTES") or 5)))
    last = last_pull()
    tried = last_pull(_LAST_TRY)
    if not force and any(t is not None and now - t < every for t in (last, tried)):
        return 0  # a failed pull (Daraja down, registration refused) waits its turn too
    _store(_LAST_TRY, now.isoformat(), now)
    if _stored(_REGISTERED) != mpesa.shortcode:
        mpesa.pull_register(nominated, c2b.c2b_urls(config)[0], now=now)
        _store(_REGISTERED, mpesa.shortcode, now)
    start = max(now - HORIZON, (last - OVERLAP) if last else now - HORIZON)
    # The window ends a little ahead: its bounds are whole seconds, records are not.
    found = mpesa.pull_transactions(start, now + AHEAD, now=now)
    counts = settle_pulled(found, now)
    _store(_LAST_PULL, now.isoformat(), now)
    if counts.get(c2b.CREDITED) or counts.get(c2b.REVIEW):
        log.info("Pull Transactions: %s", counts)
    return len(found)


# What a receipt lookup came to.
FOUND, NOT_FOUND, ASKED, UNAVAILABLE = "found", "not found", "asked", "unavailable"


def status_urls(config: Mapping[str, Any]) -> tuple[str, str]:
    """Where Transaction Status posts its result and its queue timeout."""
    base = str(config.get("CALLBACK_BASE_URL") or config.get("PORTAL_URL") or "").rstrip("/")
    secret = config.get("CALLBACK_SECRET", "")
    return f"{base}/mpesa/status/result/{secret}", f"{base}/mpesa/status/timeout/{secret}"


def lookup_receipt(mpesa, config: Mapping[str, Any], receipt: str,
                   now: datetime | None = None) -> str:
    """A receipt a customer typed that Kibanda does not know ("I already paid").

    Pull Transactions (last 48 hours) first: what it lists is settled at once (FOUND), or
    the receipt is not there (NOT_FOUND). Where the site has initiator credentials and
    Pull did not find it, Transaction Status is asked (ASKED): its result arrives at the
    ResultURL and is settled there. UNAVAILABLE: M-Pesa could not be asked.
    """
    now = now or utcnow()
    if mpesa is None:
        return UNAVAILABLE
    answer = UNAVAILABLE
    if str(config.get("MPESA_PULL_NOMINATED_NUMBER") or "").strip():
        try:
            if _stored(_REGISTERED) != mpesa.shortcode:
                pull(mpesa, config, now, force=True)
            # What the last pull covered is settled already: only the rest is asked for.
            last = last_pull()
            start = max(now - HORIZON, last - OVERLAP) if last else now - HORIZON
            found = mpesa.pull_transactions(start, now + AHEAD, now=now)
        except KibandaError as exc:
            log.info("receipt lookup: Pull Transactions unavailable: %s", exc.operator_message)
        else:
            wanted = [record for record in found if record.receipt.upper() == receipt]
            settle_pulled(wanted, now)
            if wanted:
                return FOUND
            answer = NOT_FOUND
    if config.get("MPESA_INITIATOR_NAME") and config.get("MPESA_SECURITY_CREDENTIAL"):
        result_url, timeout_url = status_urls(config)
        try:
            mpesa.transaction_status(receipt, initiator=config["MPESA_INITIATOR_NAME"],
                                     security_credential=config["MPESA_SECURITY_CREDENTIAL"],
                                     result_url=result_url, timeout_url=timeout_url, now=now)
        except KibandaError as exc:
            log.info("receipt lookup: Transaction Status unavailable: %s",
                     exc.operator_message)
        else:
            return ASKED
    return answer

