"""Where a purchase stands, in the customer's words (the waiting page and its JSON)."""
from __future__ import annotations

from datetime import datetime

from ..models import Grant, Purchase
from ..mpesa import failure_reason, result_message
from . import grants
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
    "no_answer": {"en": "We got no answer from M-Pesa. No money was taken. Please try again.",
                  "sw": "Hatukupata jibu kutoka M-Pesa. Hakuna pesa iliyotolewa. "
                        "Tafadhali jaribu tena."},
    "review": {"en": "We could not confirm this payment. If M-Pesa took money, show the "
                     "staff your M-Pesa message and they will connect you.",
               "sw": "Hatukuweza kuthibitisha malipo haya. Kama M-Pesa ilikata pesa, "
                     "onyesha wahudumu ujumbe wako wa M-Pesa nao watakuunganisha."},
}


def purchase_state(purchase: Purchase, now: datetime) -> dict:
    """Where a purchase stands, for the customer's page and its JSON."""
    grant = grant_for(purchase) if purchase.status == Purchase.PAID else None
    status, reason = purchase.status, None
    if purchase.status == Purchase.PAID:
        status = "online" if grant and grant.logged_in_at else "paid"
        if grant and grants.grant_time_left(grant, now) == 0:
            status, reason = "expired", "used_up"
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
        "id": purchase.id,
        "status": status,
        "reason": reason,
        "message": message,
        "package": purchase.package.name_en,
        "amount": purchase.amount,
        "phone": purchase.phone,
        "access_code": grant.username if grant else None,
        "receipt": purchase.receipt,
        "expires_at": grant.expires_at.isoformat() + "Z" if grant else None,
        "time_left": grants.grant_time_left(grant, now) if grant else 0,
        "login_needed": bool(grant and not grant.logged_in_at
                             and grant.router_state == Grant.ON_ROUTER
                             and not grant.login_ip),
    }
