"""Where a purchase stands, in the customer's words (the waiting page and its JSON)."""
from __future__ import annotations

from datetime import datetime

from ..models import Purchase
from ..mpesa import failure_reason, result_message
from .purchases import PROMPT_LIFETIME
from . import fair_use, grants
from .grants import grant_for


def _both(code) -> dict:
    return {"en": result_message(code, "en"), "sw": result_message(code, "sw")}


_MESSAGES = {
    "pending": {"en": "Check your phone and enter your M-Pesa PIN.",
                "sw": "Angalia simu yako na uweke PIN yako ya M-Pesa."},
    "paid": {"en": "Paid. Connecting you now...",
             "sw": "Umelipa. Tunakuunganisha sasa..."},
    "online": {"en": "You are online. Enjoy!", "sw": "Uko mtandaoni. Furahia!"},
    "used_up": {"en": "Your package has ended. Buy a new one to go back online.",
                "sw": "Kifurushi chako kimeisha. Nunua kipya kurudi mtandaoni."},
    "confirming": {"en": "We are still confirming with M-Pesa. If you paid, you will be "
                         "connected automatically: keep this page open, or use your M-Pesa "
                         "code on Reconnect.",
                   "sw": "Bado tunathibitisha na M-Pesa. Kama ulilipa, utaunganishwa wenyewe: "
                         "acha ukurasa huu wazi, au tumia msimbo wa muamala wa M-Pesa kwenye "
                         "Unganisha tena."},
    "no_answer": {"en": "We got no answer from M-Pesa about this payment. If M-Pesa took "
                        "money, use your M-Pesa code on Reconnect or show the staff your "
                        "M-Pesa message.",
                  "sw": "Hatukupata jibu kutoka M-Pesa kuhusu malipo haya. Kama M-Pesa ilikata "
                        "pesa, tumia msimbo wa muamala wa M-Pesa kwenye Unganisha tena au "
                        "onyesha wahudumu ujumbe wako wa M-Pesa."},
    "review": {"en": "We could not confirm this payment. If M-Pesa took money, show the "
                     "staff your M-Pesa message and they will connect you.",
               "sw": "Hatukuweza kuthibitisha malipo haya. Kama M-Pesa ilikata pesa, "
                     "onyesha wahudumu ujumbe wako wa M-Pesa nao watakuunganisha."},
}


def purchase_state(purchase: Purchase, now: datetime) -> dict:
    """Where a purchase stands, for the customer's page and its JSON.

    ``status`` is one of pending, paid, online, failed, expired (a contract with the
    waiting page's script); ``reason`` says why it failed or expired, or that a payment
    is still being confirmed ("confirming": never "no money was taken" without M-Pesa's
    final word).
    """
    grant = grant_for(purchase) if purchase.status == Purchase.PAID else None
    standing = grants.grant_status(grant, now) if grant else None
    status, reason = purchase.status, None
    if purchase.status in Purchase.OPEN:
        status = "pending"
        if now >= purchase.created_at + PROMPT_LIFETIME:
            # The prompt has timed out on the phone and M-Pesa has not said how it ended.
            reason = "confirming"
    elif purchase.status == Purchase.PAID:
        status = standing.status if standing else "paid"
        if status == "expired":
            reason = "used_up"
    elif purchase.status == Purchase.REVIEW:
        status, reason = "failed", "review"
    elif purchase.status == Purchase.FAILED:
        reason = failure_reason(purchase.result_code)
    elif purchase.status == Purchase.EXPIRED:
        reason = "no_answer"
    if status == "failed" and reason != "review":
        message = _both(purchase.result_code)
    else:
        message = _MESSAGES[reason or status]
    return {
        "id": purchase.reference,
        "status": status,
        "reason": reason,
        "message": message,
        "package": purchase.package.name_en,
        "amount": purchase.amount,
        "phone": purchase.phone,
        "access_code": grant.username if grant else None,
        "receipt": purchase.receipt,
        "expires_at": grant.expires_at.isoformat() + "Z" if grant else None,
        "time_left": standing.time_left if standing else 0,
        "login_needed": bool(standing and standing.login_needed),
        # Bytes left under a data cap as the agent last read them; None: no cap.
        "data_left": fair_use.data_left(grant) if grant else None,
    }
