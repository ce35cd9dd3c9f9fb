"""The activity log in the owner's language: each entry's action key and values, in words.

An entry is written with a key and its facts (``AuditLog.write(actor, "package.create",
detail, address, name="1 hour", name_sw="Saa 1", price=10)``); the page says
"Kifurushi kimeongezwa: Saa 1, KES 10" on a Swahili screen. Entries from before the
values were kept show their English detail as it was written.
"""
from __future__ import annotations

import re

from ..i18n import N_, format_money, translate
from ..models import AuditLog

# action key -> (what happened, the line its values fill in or None). A line with words
# is translated; one of values only ("{name}, {price}") is filled in as it is.
ACTIONS: dict[str, tuple[str, str | None]] = {
    "admin.login": (N_("Signed in"), None),
    "admin.login_failed": (N_("Sign-in refused: wrong username or password"), None),
    "admin.login_locked": (N_("Sign-in blocked after too many tries"), None),
    "admin.logout": (N_("Signed out"), None),
    "admin.password_change": (N_("Password changed"), None),
    "admin.create": (N_("Account added"), "{role} {username}"),
    "admin.login_disabled": (N_("Sign-in refused: the account is disabled"), None),
    "admin.disable": (N_("Account disabled"), None),
    "admin.enable": (N_("Account enabled again"), None),
    "admin.remove": (N_("Account removed"), None),
    "admin.password_reset": (N_("Password reset by the owner"), None),
    "session.kick": (N_("Logged a device off the WiFi"), "{user}"),
    "package.create": (N_("Package added"), "{name}, {price}"),
    "package.update": (N_("Package changed"), "{name}, {price}"),
    "package.activate": (N_("Package back on sale"), "{name}, {price}"),
    "package.retire": (N_("Package retired"), "{name}, {price}"),
    "package.sync": (N_("Package sent to the router"), "{name}, {price}"),
    "branding.update": (N_("Branding changed"), "{name}"),
    "branding.logo": (N_("New logo"), "{kind}, {kb} KB"),
    "branding.logo_remove": (N_("Logo removed"), None),
    "sms.settings": (N_("SMS choices changed"), N_("daily summary {summary}")),
    "grant.manual": (N_("Free access given"), "{code}: {name} ({note})"),
    "trial.on": (N_("Free trial on"), N_("{minutes} minutes, speed of {name}")),
    "trial.off": (N_("Free trial off"), None),
    "grant.free_device": (N_("Freed a device place of an access code"), None),
    "grant.slowed": (N_("Slow speed after the data cap"), "{code}: {name}, {rate}"),
    "vouchers.create": (N_("Vouchers made"), N_("Batch #{batch}: {count} x {name}")),
    "vouchers.push": (N_("Vouchers put on the router"), N_("Batch #{batch}: {state}")),
    "vouchers.void": (N_("Vouchers voided"), N_("Batch #{batch}: {count} voided")),
    "vouchers.print": (N_("Vouchers printed"), N_("Batch #{batch} ({layout})")),
    "vouchers.export": (N_("Vouchers exported as CSV"), N_("Batch #{batch}")),
}
# Values that are words of ours (a role, a push state): translated like any other text.
_WORD_VALUES = ("role", "state")
_PLACEHOLDER = re.compile(r"{\w+}")
_WORDS = re.compile(r"[A-Za-z]{2}")


def package_values(package) -> dict:
    """The values an entry about ``package`` keeps: its names in both languages, its price."""
    return {"name": package.name_en, "name_sw": package.name_sw, "price": package.price}


def _shown(values: dict, lang: str) -> dict:
    shown = {}
    for key, value in values.items():
        if key.endswith("_sw"):
            continue
        if lang == "sw" and values.get(f"{key}_sw"):
            value = values[f"{key}_sw"]
        if key == "price" and isinstance(value, int):
            value = format_money(value, lang)
        elif key in _WORD_VALUES and isinstance(value, str):
            value = translate(value, lang)
        shown[key] = value
    return shown


def entry_words(entry: AuditLog, lang: str) -> tuple[str, str]:
    """(what happened, its details) for one entry, in ``lang``."""
    what, line = ACTIONS.get(entry.action, (None, None))
    values = entry.values()
    details = entry.detail or ""
    if line and values:
        try:
            shown = _shown(values, lang)
            details = (translate(line, lang, **shown) if _WORDS.search(_PLACEHOLDER.sub("", line))
                       else line.format(**shown))
        except (KeyError, IndexError, ValueError):
            details = entry.detail or ""  # values of another shape: the English line
    return (translate(what, lang) if what else entry.action), details
