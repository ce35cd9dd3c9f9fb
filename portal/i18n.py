"""English and Swahili: the gettext catalogue, and CLDR formats for dates, numbers and money.

Message ids are the English text; ``portal/translations/sw/LC_MESSAGES/messages.po`` maps
them to Swahili (a translator opens it in Poedit or Weblate; ``babel.cfg`` tells
``pybabel extract`` where the texts are). The .po file is compiled in memory the first
time it is needed, so a fresh clone runs without a compile step. ``translate("Buy", "sw")``
gives "Nunua". Choosing a request's language is the web room's business
(:mod:`portal.web.i18n`); printing, the CLI and messages only need this module.

Dates, months, times, numbers and money a person reads go through the ``format_*``
functions here (CLDR data, locales ``en_KE`` and ``sw_KE``): "3 Dec 2026" on an English
page is "3 Des 2026" on a Swahili one. Stored times are naive UTC; they are shown in
Nairobi time.
"""
from __future__ import annotations

import gettext
import io
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path

from .timeutil import to_nairobi

LANGUAGES = ("en", "sw")
LOCALES = {"en": "en_KE", "sw": "sw_KE"}
TRANSLATIONS = Path(__file__).parent / "translations"
DOMAIN = "messages"


def po_path(lang: str = "sw") -> Path:
    """Where the catalogue for ``lang`` lives."""
    return TRANSLATIONS / lang / "LC_MESSAGES" / f"{DOMAIN}.po"


@lru_cache(maxsize=len(LANGUAGES))
def translations(lang: str) -> gettext.NullTranslations:
    """The compiled catalogue for ``lang`` (English is the message ids themselves)."""
    path = po_path(lang)
    if lang == "en" or not path.exists():
        return gettext.NullTranslations()
    # Babel is imported where it is used: the agent and the CLI mostly never need it, and
    # on a router every process's memory counts (scripts/bench_memory.py).
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    with path.open("rb") as source:
        po = read_po(source, locale=lang)
    compiled = io.BytesIO()
    write_mo(compiled, po, use_fuzzy=False)  # a fuzzy entry is a guess: English until checked
    compiled.seek(0)
    return gettext.GNUTranslations(compiled)


def catalog() -> dict[str, str]:
    """English -> Swahili for every translated (non-fuzzy) entry of the catalogue."""
    from babel.messages.pofile import read_po

    with po_path("sw").open("rb") as source:
        po = read_po(source, locale="sw")
    return {m.id: m.string for m in po if m.id and m.string and not m.fuzzy
            and isinstance(m.id, str)}


def translate(text: str, lang: str, **values) -> str:
    """``text`` in ``lang`` with ``{name}`` placeholders filled."""
    out = translations(lang).gettext(text) if lang in LANGUAGES and text else text
    return out.format(**values) if values else out


def locale_for(lang: str) -> str:
    """The CLDR locale for a page language ("sw" -> "sw_KE"; anything else English)."""
    return LOCALES.get(lang, LOCALES["en"])


def _local(moment):
    """A stored naive-UTC datetime in Nairobi; a plain date as it is."""
    if isinstance(moment, datetime):
        return to_nairobi(moment)
    return moment


def format_date(moment: datetime | date | None, lang: str = "en") -> str:
    """A day as people write it: "3 Dec 2026" / "3 Des 2026" (Nairobi's day)."""
    if moment is None:
        return ""
    from babel.dates import format_date as cldr_date

    return cldr_date(_local(moment), "d MMM y", locale=locale_for(lang))


def format_time(moment: datetime | None, lang: str = "en") -> str:
    """A time of day on the 24-hour clock in Nairobi: "14:05"."""
    if moment is None:
        return ""
    from babel.dates import format_time as cldr_time

    return cldr_time(_local(moment), "HH:mm", locale=locale_for(lang))


def format_datetime(moment: datetime | None, lang: str = "en") -> str:
    """A stored time in Nairobi: "3 Dec 2026 14:05" / "3 Des 2026 14:05"."""
    if moment is None:
        return ""
    return f"{format_date(moment, lang)} {format_time(moment, lang)}"


def format_month(moment: datetime | date | None, lang: str = "en") -> str:
    """A month and year: "December 2026" / "Desemba 2026"."""
    if moment is None:
        return ""
    from babel.dates import format_date as cldr_date

    return cldr_date(_local(moment), "LLLL y", locale=locale_for(lang))


def format_number(value: int | float | None, lang: str = "en") -> str:
    """A count with the locale's grouping: "12,345"."""
    if value is None:
        return ""
    from babel.numbers import format_decimal

    return format_decimal(value, locale=locale_for(lang))


def format_money(kes: int | None, lang: str = "en") -> str:
    """Whole shillings with the ISO code, as receipts and M-Pesa write them: "KES 1,500"."""
    if kes is None:
        return ""
    from babel.numbers import format_currency

    return format_currency(kes, "KES", format="¤¤ #,##0", locale=locale_for(lang),
                           currency_digits=False)


def N_(text: str) -> str:
    """Mark ``text`` for the catalogue without translating it now (gettext_noop): tables of
    English texts translated when shown. ``pybabel extract -k N_`` finds them."""
    return text
