"""English and Swahili. Message ids are the English text; catalogs map them to Swahili.

Catalogs live in ``portal/translations/*.json`` (one file per area of the app, merged), so
``_("Buy")`` renders "Nunua" for a Swahili reader. The language comes from ``?lang=``
(remembered in the session), then the session, then Accept-Language, then the site default.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from flask import current_app, g, request, session
from markupsafe import Markup

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


def choose_language() -> str:
    """Pick the request's language (query, session, Accept-Language, default)."""
    asked = request.args.get("lang") or request.form.get("lang")
    if asked in LANGUAGES:
        session["lang"] = asked
        return asked
    if session.get("lang") in LANGUAGES:
        return session["lang"]
    best = request.accept_languages.best_match(LANGUAGES)
    if best:
        return best
    default = current_app.config.get("DEFAULT_LANGUAGE", "en")
    return default if default in LANGUAGES else "en"


def current_language() -> str:
    """The language of the current request (chosen once per request)."""
    if "lang" not in g:
        g.lang = choose_language()
    return g.lang


def gettext(text: str, **values) -> str:
    """Translate for the current request; safe to use in templates as ``_()``."""
    result = translate(text, current_language(), **values)
    return Markup(result) if isinstance(text, Markup) else result


def init_app(app) -> None:
    """Expose ``_`` and ``lang`` to templates."""
    app.jinja_env.globals["_"] = gettext
    app.jinja_env.globals["current_language"] = current_language
