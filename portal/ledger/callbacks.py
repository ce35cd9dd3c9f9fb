"""An STK callback received, from any road: the site's own URL or the hub's relay.

``receive_stk_callback`` is the whole of what ``POST /mpesa/callback/<secret>/<reference>``
does (the secret check, the source check, record-then-settle, provisioning the grant it
earned), so a callback the agent fetched from the hub's relay is treated exactly like one
Safaricom posted to the site. No Flask here: the caller turns the answer into a response.
"""
from __future__ import annotations

import hmac
import ipaddress
import logging
from datetime import datetime
from typing import Callable

from . import grants, settlement

log = logging.getLogger(__name__)

ACCEPTED = {"ResultCode": 0, "ResultDesc": "Accepted"}

#: ``CALLBACK_ALLOWED_IPS=safaricom``: the addresses Safaricom's callbacks are widely
#: reported to come from (no official list exists: a secondary check, never the only one).
SAFARICOM_CALLBACK_SOURCES = (
    "196.201.214.200", "196.201.214.206", "196.201.214.207", "196.201.214.208",
    "196.201.213.114", "196.201.213.44", "196.201.212.127", "196.201.212.128",
    "196.201.212.129", "196.201.212.132", "196.201.212.136", "196.201.212.138",
    "196.201.212.69", "196.201.212.74",
)


def source_allowed(remote_addr: str, allowed: str) -> bool:
    """True when no list is configured, or ``remote_addr`` is in one of its networks.

    The list is comma-separated addresses or networks; the word ``safaricom`` stands for
    :data:`SAFARICOM_CALLBACK_SOURCES`.
    """
    networks = []
    for item in str(allowed or "").split(","):
        item = item.strip()
        if item.lower() == "safaricom":
            networks.extend(SAFARICOM_CALLBACK_SOURCES)
        elif item:
            networks.append(item)
    if not networks:
        return True
    try:
        address = ipaddress.ip_address(remote_addr or "")
    except ValueError:
        return False
    for network in networks:
        try:
            if address in ipaddress.ip_network(network, strict=False):
                return True
        except ValueError:
            log.warning("CALLBACK_ALLOWED_IPS: %r is not an address or network", network)
    return False


def receive_stk_callback(config, secret: str, reference: str | None, body: bytes,
                         source_ip: str, now: datetime,
                         gateway: Callable[[], object]) -> tuple[int, dict | None]:
    """Check, record and settle one STK callback; returns (HTTP status, answer).

    404 with no answer: the secret is wrong (say nothing more to a stranger). 403: the
    source is not in ``CALLBACK_ALLOWED_IPS`` (recorded for review). 400: malformed.
    Otherwise 200 and Safaricom's acknowledgement. ``gateway`` is called only when a grant
    was earned: a router that is down then only delays access (outside the settlement).
    """
    expected = str(config.get("CALLBACK_SECRET") or "")
    if not expected or not hmac.compare_digest(secret.encode(), expected.encode()):
        return 404, None
    if reference is not None and len(reference) > 32:
        return 404, None
    if not source_allowed(source_ip, config.get("CALLBACK_ALLOWED_IPS", "")):
        settlement.record_refused(body, source_ip, now,
                                  "source address not in CALLBACK_ALLOWED_IPS")
        return 403, {"ResultCode": 1, "ResultDesc": "Rejected"}
    outcome, purchase = settlement.record_callback(body, source_ip, now, reference=reference)
    if outcome == settlement.MALFORMED:
        return 400, {"ResultCode": 1, "ResultDesc": "Rejected: malformed body"}
    if outcome in (settlement.SETTLED, settlement.LATE) and purchase is not None:
        grants.provision_if_due(grants.grant_for(purchase), gateway(), now)
    return 200, ACCEPTED
