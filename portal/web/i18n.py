"""The language of a web request, and ``_()`` for templates.

The language comes from ``?lang=`` (remembered in the session), then the session, then
Accept-Language, then the site default. Catalogs and ``translate`` are in :mod:`portal.i18n`.
"""
from __future__ import annotations

from flask import current_app, g, request, session
from markupsafe import Markup

from ..phone import display_phone
from ..venue.wording import c2b_reason, purchase_note
from ..i18n import (
    LANGUAGES, format_date, format_datetime, format_money, format_month, format_number,
    translate,
)


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


def local(moment) -> str:
    """A stored UTC time as Nairobi time in the request's language: "3 Des 2026 14:05"."""
    return format_datetime(moment, current_language())


def _in_language(formatter):
    def filter_(value):
        return formatter(value, current_language())
    filter_.__doc__ = formatter.__doc__
    return filter_


def init_app(app) -> None:
    """Expose ``_``, ``current_language``, ``local()`` and the CLDR filters to templates:
    ``|money`` (KES 1,500), ``|number``, ``|day`` (3 Des 2026), ``|when`` (with the time),
    ``|month`` (Desemba 2026), each in the request's language; ``|phone`` (0712 345 678),
    ``|name`` (a package's name in the request's language, English when it has no
    Swahili one) and ``purchase_note(p)`` (why a sale failed, in plain words)."""
    app.jinja_env.globals["_"] = gettext
    app.jinja_env.globals["current_language"] = current_language
    app.jinja_env.globals["local"] = local
    app.jinja_env.globals["purchase_note"] = lambda p: purchase_note(p, current_language())
    app.jinja_env.filters["c2b_reason"] = lambda reason: c2b_reason(reason, current_language())
    app.jinja_env.filters["phone"] = lambda number: display_phone(number, "spaced")
    app.jinja_env.filters["name"] = lambda package: package.name(current_language())
    for name, formatter in (("money", format_money), ("number", format_number),
                            ("day", format_date), ("when", format_datetime),
                            ("month", format_month)):
        app.jinja_env.filters[name] = _in_language(formatter)
