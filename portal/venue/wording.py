"""Plain words, English and Swahili: packages ("1 day", "Siku 1", "up to 5 Mbps") and,
for the owner, where an M-Pesa sale stands."""
from __future__ import annotations

import re

from ..i18n import N_, translate
from ..models import Purchase
from ..mpesa import owner_reason

_RATE = re.compile(r"^(\d+(?:\.\d+)?)([kKMG]?)$")


def _unit(count: int, lang: str, en: str, sw: str) -> str:
    if lang == "sw":
        return f"{sw} {count}"
    return f"{count} {en}{'' if count == 1 else 's'}"


def duration_words(seconds: int, lang: str) -> str:
    """Seconds in words: "1 hour" / "Saa 1", "7 days" / "Siku 7", "2 hours 5 minutes"."""
    days, rest = divmod(max(0, int(seconds)), 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    parts = [_unit(n, lang, en, sw) for n, en, sw in
             ((days, "day", "Siku"), (hours, "hour", "Saa"), (minutes, "minute", "Dakika")) if n]
    if not parts:
        return "chini ya dakika moja" if lang == "sw" else "less than a minute"
    words = " ".join(parts[:2])
    return words[0] + words[1:].lower() if lang == "sw" else words


def speed_figure(rate_limit: str, lang: str) -> str:
    """The download speed of a RouterOS rate-limit (``2M/5M``: the tx part) as a figure:
    "5 Mbps" / "Mbps 5"; '' when there is none."""
    first = (rate_limit or "").split(" ")[0]
    if not first:
        return ""
    download = first.split("/")[-1]
    match = _RATE.match(download)
    if not match:
        return ""
    unit = {"": "bps", "k": "kbps", "K": "kbps", "M": "Mbps", "G": "Gbps"}[match.group(2)]
    return f"{match.group(1)} {unit}" if lang != "sw" else f"{unit} {match.group(1)}"


def speed_words(rate_limit: str, lang: str) -> str:
    """"up to 5 Mbps" / "hadi Mbps 5" from a RouterOS rate-limit."""
    figure = speed_figure(rate_limit, lang)
    if not figure:
        return ""
    return f"hadi {figure}" if lang == "sw" else f"up to {figure}"


def devices_words(count: int, lang: str) -> str:
    """"1 device" / "Kifaa 1", "3 devices" / "Vifaa 3"."""
    if lang == "sw":
        return f"{'Kifaa' if count == 1 else 'Vifaa'} {count}"
    return f"{count} device{'' if count == 1 else 's'}"


_OWNER_NOTES = {
    Purchase.UNANSWERED: N_("No answer from M-Pesa to the request yet; still asking."),
    Purchase.REVIEW: N_("Needs a look: M-Pesa's answer did not match this sale, or no final "
                        "word came in 48 hours. Compare with the customer's M-Pesa message."),
    Purchase.EXPIRED: N_("No final word from M-Pesa."),
}


def purchase_note(purchase: Purchase, lang: str) -> str:
    """What the owner needs to know about an M-Pesa sale beyond its status, in ``lang``:
    why it failed in plain words (never Daraja's raw text, which pages show apart), or
    that a sale credited by query has no receipt yet. Empty when the status says it all."""
    if purchase.status == Purchase.PAID:
        return "" if purchase.receipt else translate("receipt not yet received from M-Pesa",
                                                     lang)
    if purchase.status == Purchase.FAILED:
        return translate(owner_reason(purchase.result_code, purchase.result_desc), lang)
    note = _OWNER_NOTES.get(purchase.status)
    return translate(note, lang) if note else ""


#: The parts of a payment-from-the-menu reason (``C2BPayment.reason``, written in English
#: by ledger/c2b.py, parts joined by "; ") and how the owner reads each one. A part that
#: matches none is shown as it was written.
_C2B_REASONS = [
    (re.compile(r"account '?(?P<account>[^';]*)'?: no waiting purchase"),
     N_("account {account}: no customer was waiting with this code")),
    (re.compile(r"account (?P<account>\S+) is no purchase's code"),
     N_("account {account} is not a code this site gave")),
    (re.compile(r"KES (?P<amount>\d+) is the price of no package"),
     N_("KES {amount} is not the price of any package")),
    (re.compile(r"KES (?P<amount>\d+) is the price of (?P<count>\d+) packages"),
     N_("KES {amount} is the price of {count} packages")),
    (re.compile(r"KES (?P<amount>\d+) from the menu fits (?P<count>\d+) waiting purchases.*"),
     N_("KES {amount} fits {count} customers who were waiting: which one paid?")),
    (re.compile(r"account (?P<account>\S+) of purchase \d+ has expired"),
     N_("account {account} had expired")),
    (re.compile(r"purchase \d+ was already (?P<status>\w+)"),
     N_("that purchase was already {status}")),
    (re.compile(r"paid KES (?P<amount>\d+) for purchase \d+ \(price KES (?P<price>\d+)\)"),
     N_("paid KES {amount}, the price was KES {price}")),
    (re.compile(r"purchase \d+ by (?P<how>\w+)"), N_("paid for the waiting purchase")),
    (re.compile(r"receipt of purchase \d+ \(credited by query\)"),
     N_("the receipt of a sale already paid")),
    (re.compile(r"sold (?P<package>.+) by amount(?: \(by (?P<actor>.+)\))?"),
     N_("sold {package} by its price")),
    (re.compile(r"refunded by (?P<actor>.+)"), N_("marked refunded by {actor}")),
    (re.compile(r"amount (?P<amount>.+) has cents.*"),
     N_("amount {amount} has cents: M-Pesa takes whole shillings")),
]


def c2b_reason(reason: str, lang: str) -> str:
    """Why a payment from the M-Pesa menu went where it did, in the owner's words."""
    said = []
    for part in (reason or "").split("; "):
        for pattern, words in _C2B_REASONS:
            match = pattern.fullmatch(part.strip())
            if match:
                values = {key: value or "" for key, value in match.groupdict().items()}
                if "status" in values:
                    values["status"] = translate(values["status"], lang)
                said.append(translate(words, lang, **values))
                break
        else:
            said.append(part)
    return "; ".join(part for part in said if part)
