"""The language of a web request, and ``_()`` for templates.

The language comes from ``?lang=`` (remembered in the session), then the session, then
Accept-Language, then the site default. Catalogs and ``translate`` are in :mod:`portal.i18n`.
"""
from __future__ import annotations

from flask import current_app, g, request, session
from markupsafe import Markup

from ..i18n import LANGUAGES, translate


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
