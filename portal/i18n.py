"""English and Swahili. Message ids are the English text; catalogs map them to Swahili.

Catalogs live in ``portal/translations/*.json`` (one file per area of the app, merged), so
``translate("Buy", "sw")`` gives "Nunua". Choosing a request's language is the web room's
business (:mod:`portal.web.i18n`); printing and messages only need this module.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

LANGUAGES = ("en", "sw")
_DIR = Path(__file__).parent / "translations"


@lru_cache(maxsize=1)
def catalog() -> dict[str, str]:
    """English -> Swahili, merged from every catalog file."""
    merged: dict[str, str] = {}
    for file in sorted(_DIR.glob("*.json")):
        merged.update(json.loads(file.read_text(encoding="utf-8")))
    return merged


def translate(text: str, lang: str, **values) -> str:
    """``text`` in ``lang`` with ``{name}`` placeholders filled."""
    out = catalog().get(text, text) if lang == "sw" else text
    return out.format(**values) if values else out
