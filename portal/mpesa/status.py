"""The Transaction Status result Safaricom POSTs to the ResultURL (asynchronously).

Shape (Daraja's Transaction Status page): ``{"Result": {"ResultType", "ResultCode",
"ResultDesc", "ConversationID", "ResultParameters": {"ResultParameter": [{"Key",
"Value"}, ...]}}}`` with keys such as ReceiptNo, Amount, DebitPartyName
("2547XXXXXXXX - NAME"), InitiatedTime / FinalisedTime (YYYYMMDDHHmmss, Nairobi) and
TransactionStatus ("Completed"). Parsed by key, never by position; the result is turned
into the shape of a C2B confirmation so the ledger has one path for every payment.
"""
from __future__ import annotations

import json

from ..errors import MalformedCallback


def parse_status_result(raw: bytes | str) -> dict | None:
    """A completed payment as a C2B-confirmation dict, or None when M-Pesa found none
    (or it is not completed). Raises MalformedCallback for a body that is not a result."""
    try:
        body = json.loads(raw)
        result = body["Result"]
        code = str(result["ResultCode"]).strip()
    except (ValueError, TypeError, KeyError) as exc:
        raise MalformedCallback("Transaction Status result without Result/ResultCode") from exc
    if code != "0":
        return None
    items = ((result.get("ResultParameters") or {}).get("ResultParameter")) or []
    if isinstance(items, dict):
        items = [items]
    values = {str(item.get("Key")): item.get("Value") for item in items
              if isinstance(item, dict)}
    if str(values.get("TransactionStatus") or "Completed").lower() != "completed":
        return None
    receipt = str(values.get("ReceiptNo") or "").strip()
    if not receipt:
        return None
    payer = str(values.get("DebitPartyName") or "").split(" - ", 1)[0].strip()
    return {"TransactionType": str(values.get("ReasonType") or "Transaction Status")[:40],
            "TransID": receipt, "TransAmount": str(values.get("Amount") or ""),
            "TransTime": str(values.get("FinalisedTime") or values.get("InitiatedTime") or ""),
            "BillRefNumber": "", "MSISDN": payer, "FirstName": ""}
