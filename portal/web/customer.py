"""Customer pages: packages, buying with M-Pesa, the waiting page, vouchers, reconnect.

Server-rendered, English and Swahili, usable with JavaScript off. The router's login
page hands over ``mac``, ``ip``, ``link-login-only``, ``link-orig`` and ``error``; they
are kept in the session and in hidden fields so they survive every step.
"""
from __future__ import annotations

import ipaddress
import re
from datetime import timedelta

from flask import (
    Blueprint, current_app, jsonify, redirect, render_template, request, session, url_for,
)
from peewee import DatabaseError

from ..errors import (
    DeviceLoginFailed, KibandaError, NotFound, StorageUnavailable, ValidationError,
)
from ..ledger import (
    codes, devices, fair_use, grants, purchases, reconcile, router_state, status, topups, trials,
    windows,
)
from ..models import Grant, Package, Purchase, db
from ..phone import display_phone
from ..i18n import format_date, format_datetime, format_time, translate
from ..timeutil import utcnow
from ..venue.hotspot_files import router_error_message
from ..venue.packages import format_size
from ..venue.wording import devices_words, duration_words, speed_figure, speed_words
from . import app_mpesa, app_router, current_branding
from .i18n import current_language

bp = Blueprint("customer", __name__)

DEVICE_FIELDS = ("mac", "ip", "link-login-only", "link-orig")
_MAC = re.compile(r"^[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5}$")
# No user part, no backslash, no spaces: what a browser and this check read as the host
# must be the same host.
_ROUTER_LINK = re.compile(r"^https?://(?P<host>[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?"
                          r"(?:[/?#][^\s\\]*)?$", re.I)
_LINK = re.compile(r"^https?://[^\s\\]+$", re.I)
_OWNED_MAX = 20
#: How long a failed prompt's page keeps refreshing for a payment from the menu.
MENU_WAIT = timedelta(minutes=15)


# -- presentation helpers ---------------------------------------------------------------

def _package_view(package: Package, lang: str) -> dict:
    cap = format_size(package.data_cap_bytes)
    name = package.name(lang)
    validity = duration_words(package.validity_seconds, lang)
    # "1 hour" named "1 hour" says its duration once, not twice.
    shown_validity = "" if validity.casefold() in name.casefold() else validity
    details = [windows.window_words(package, lang), shown_validity,
               speed_words(package.rate_limit, lang),
               devices_words(package.devices, lang),
               _data_words(package, cap, lang)]
    return {"id": package.id, "name": name, "price": package.price, "validity": validity,
            "details": [words for words in details if words]}


def _data_words(package: Package, cap: str, lang: str) -> str:
    """"1 GB data", or for a fair-use package "1 GB, then 256 kbps" (slow, not cut off)."""
    if not cap:
        return ""
    if package.fair_use_rate:
        return translate("{cap}, then {speed}", lang, cap=cap,
                         speed=speed_figure(package.fair_use_rate, lang))
    return f"data {cap}" if lang == "sw" else f"{cap} data"


#: Package cards by (database, language, fingerprint of the package table).
_CARD_CACHE: dict[tuple, list[dict]] = {}
#: Changes whenever a package is added, edited, retired or reordered (packages.py always
#: bumps updated_at), at the cost of one tiny query instead of building every card.
_PACKAGE_FINGERPRINT = ("SELECT group_concat(id || ':' || active || ':' || price || ':' "
                        "|| sort_order || ':' || updated_at, ',') FROM package")


def packages_on_sale(lang: str) -> list[dict]:
    """The landing page's package cards, rebuilt only when the packages change."""
    fingerprint = db.execute_sql(_PACKAGE_FINGERPRINT).fetchone()[0]
    key = (db.database, lang, fingerprint)
    cards = _CARD_CACHE.get(key)
    if cards is None:
        cards = [_package_view(p, lang) for p in Package.on_sale()]
        if len(_CARD_CACHE) > 16:
            _CARD_CACHE.clear()
        _CARD_CACHE[key] = cards
    return cards


def _site() -> dict:
    return current_branding()


def _lang_url(lang: str) -> str:
    if request.method == "GET" and request.endpoint:
        # The device fields live in the session: links carry only what the page shows.
        args = {k: v for k, v in request.args.items() if k in ("phone", "package", "code")}
        return url_for(request.endpoint, **(request.view_args or {}), **args, lang=lang)
    return url_for("customer.landing", lang=lang)


def _render(template: str, status: int = 200, **context):
    lang = current_language()
    body = render_template(template, lang=lang, site=_site(), lang_url=_lang_url, **context)
    return body, status


# -- the device the router handed over -----------------------------------------------------

def _clean(name: str, value: str) -> str:
    value = (value or "").strip()
    if name == "mac":
        return value.upper() if _MAC.match(value) else ""
    if name == "ip":
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            return ""
    if len(value) > 2000:
        return ""
    if name == "link-login-only":
        # The router-login form posts the customer's access code here: only ever to the
        # hotspot itself (its DNS name or gateway address) or the router's own address.
        match = _ROUTER_LINK.fullmatch(value)
        config = current_app.config
        allowed = {str(config.get("HOTSPOT_DNS_NAME") or ""), str(config.get("ROUTER_HOST") or ""),
                   *str(config.get("HOTSPOT_ADDRESS") or "").split(",")}
        allowed = {host.strip().strip("[]").lower() for host in allowed} - {""}
        host = match.group("host").strip("[]").lower() if match else ""
        return value if host in allowed else ""
    # link-orig: where the customer wanted to go, any http(s) address; only ever a plain
    # link (and the router's dst), never where a form sends the code.
    return value if _LINK.fullmatch(value) else ""


def _device() -> dict:
    """Device fields from this request (query or form), else those kept in the session."""
    kept = session.get("device") or {}
    given = {name: request.values[name] for name in DEVICE_FIELDS if name in request.values}
    # What the session kept is checked again: it may predate a stricter rule.
    device = {name: _clean(name, given[name] if name in given else kept.get(name, ""))
              for name in DEVICE_FIELDS}
    if given and device != kept:
        session["device"] = device
    return device


def _own(kind: str, item_id: int) -> None:
    """Remember in the session that this browser may see ``item_id``'s access code."""
    owned = [i for i in session.get(kind, []) if i != item_id][-(_OWNED_MAX - 1):]
    session[kind] = owned + [item_id]


def _owns(kind: str, item_id: int) -> bool:
    return item_id in session.get(kind, [])


def _pay_menu(purchase: Purchase | None = None) -> dict | None:
    """How to pay from the M-Pesa menu: PayBill number and account (the purchase's own
    code), or the Till number; None when M-Pesa is not set up for it."""
    config = current_app.config
    till = str(config.get("MPESA_TYPE") or "").lower() in ("till", "buygoods", "buy_goods",
                                                            "buy-goods")
    number = str(config.get("MPESA_PARTYB") if till else config.get("MPESA_SHORTCODE") or "")
    if not number.isdigit() or not config.get("MPESA_CONSUMER_KEY"):
        return None  # M-Pesa not set up: a number shown here would take nobody's money
    account = purchase.account_code if purchase is not None else None
    if not till and account is None and config.get("C2B_REJECT_UNKNOWN_ACCOUNTS"):
        return None  # no code to give yet, and any other account would be refused
    return {"kind": "till" if till else "paybill", "number": number, "account": account,
            "amount": purchase.amount if purchase is not None else None}


# -- landing and buying ----------------------------------------------------------------------

def _landing(*, errors=None, form_error=None, phone="", chosen=None, voucher_code="",
             status=200, trial_phone="", trial_error=None):
    lang = current_language()
    device = _device()
    # Anyone can put words in ?error=: show only what the router's errors.txt can say.
    router_error = router_error_message(request.values.get("error", "")[:1000], lang)
    try:
        chosen = int(chosen) if chosen not in (None, "") else None
    except ValueError:
        chosen = None
    packages = packages_on_sale(lang)
    offer = trials.trial_offer()
    trial = {"minutes": offer[0], "phone": trial_phone, "error": trial_error} if offer else None
    if chosen is None and len(packages) == 1:
        chosen = packages[0]["id"]
    return _render("customer/landing.html", status, packages=packages, device=device,
                   errors=errors or {}, form_error=form_error, phone=phone, chosen=chosen,
                   voucher_code=voucher_code, router_error=router_error, pay_menu=_pay_menu(),
                   trial=trial)


@bp.route("/", methods=["GET", "POST"])
def landing():
    """The package page (the router's login.html sends the device here)."""
    return _landing(phone=request.args.get("phone", "")[:20],
                    chosen=request.args.get("package"))


@bp.post("/buy")
def buy():
    """Send the STK Push for the chosen package, then show the waiting page."""
    device = _device()
    lang = current_language()
    phone = request.form.get("phone", "")[:40]
    chosen = request.form.get("package")
    config = current_app.config
    try:
        purchase = purchases.start_purchase(
            chosen, phone, mac=device["mac"], ip=device["ip"],
            link_login_only=device["link-login-only"], link_orig=device["link-orig"],
            mpesa=app_mpesa(), callback_url=purchases.callback_url(config),
            now=utcnow(), account_reference=config.get("MPESA_ACCOUNT_REFERENCE") or None,
            gateway=app_router(), source=request.remote_addr or "", language=lang)
    except ValidationError as exc:
        if exc.field in ("phone", "package"):
            return _landing(errors={exc.field: exc.message_for(lang)}, phone=phone,
                            chosen=chosen, status=400)
        return _landing(form_error=exc.message_for(lang), phone=phone, chosen=chosen,
                        status=exc.status)
    except KibandaError as exc:
        return _landing(form_error=exc.message_for(lang), phone=phone, chosen=chosen,
                        status=exc.status)
    _own("purchases", purchase.id)
    return redirect(url_for(".purchase_page", reference=purchase.reference), 303)


# -- the waiting / result page ------------------------------------------------------------

def _grant_view(grant: Grant | None, now, *, status: str, access_code, receipt,
                login_needed: bool, login_url: str, link_orig: str, lang: str,
                mac: str = "") -> dict:
    """What the customer sees about their access (shared by purchases and codes)."""
    if grant is None:
        return {"status": status, "access_code": None}
    time_left = grants.grant_time_left(grant, now)
    # A windowed grant between its windows: no login to offer, the page says when it opens.
    closed = status != "expired" and not windows.is_open(grant.package, now)
    # Only the browser that holds the code (it is shown) is offered more of it.
    topup = bool(access_code) and status != "expired" and topups.can_top_up(grant, now)
    return {"status": status, "access_code": access_code, "receipt": receipt,
            "time_left": time_left, "time_left_words": duration_words(time_left, lang),
            "expires_local": format_datetime(grant.expires_at, lang),
            "devices": devices_words(grant.package.devices, lang),
            "package": (translate("Free trial", lang) if grant.source == Grant.TRIAL
                        else grant.package.name(lang)),
            "login_needed": bool(login_needed and login_url and access_code and not closed),
            "window_note": windows.window_note(grant, now, lang), "window_closed": closed,
            "topup_url": url_for("topup.topup_page", grant=grant.id) if topup else None,
            "login_url": login_url, "link_orig": link_orig,
            "random_mac": devices.is_random_mac(mac), **_data_view(grant, now, lang)}


#: Usage read longer ago than this is shown with the time it was read.
USAGE_OLD_AFTER = timedelta(minutes=10)


def _data_view(grant: Grant, now, lang: str) -> dict:
    """A capped grant's data in words: left of the cap, used up, or slow since the cap."""
    left = fair_use.data_left(grant)
    if left is None:
        return {}
    package = grant.package
    cap = format_size(grants.data_cap_of(grant))  # with what top-ups added
    view = {"data_left": left,
            "data_left_words": translate("{left} of {cap} left", lang,
                                         left=format_size(left) or "0 MB", cap=cap)}
    if grant.slowed_at is not None:
        same_day = format_date(grant.expires_at, lang) == format_date(now, lang)
        until = (format_time if same_day else format_datetime)(grant.expires_at, lang)
        view["data_note"] = translate(
            "You have used your {cap}; you are now on slow speed until {time}.", lang,
            cap=cap, time=until)
        view["buy_more"] = True
        return view
    if left == 0 and grant.bytes_used is not None and not fair_use.is_fair_use(package):
        view["data_used_up"] = True
        view["buy_more"] = True
        view["data_note"] = translate(
            "You have used all your {cap} of data. Buy more data to go back online.", lang,
            cap=cap)
        return view
    read_at = router_state.usage_read_at()
    if read_at is not None and now - read_at > USAGE_OLD_AFTER:
        view["data_read_words"] = translate("Counted at {time}; it may be less now.", lang,
                                            time=format_datetime(read_at, lang))
    return view


def _purchase_and_state(reference: str):
    """Load a purchase, move it on if due (query, provisioning), and say where it stands."""
    now = utcnow()
    purchase = Purchase.get_or_none(Purchase.reference == reference)
    if purchase is None:
        raise NotFound(f"purchase {reference[:40]!r}")
    if purchase.status == Purchase.PENDING and (
            purchase.next_query_at is None or purchase.next_query_at <= now):
        purchase = purchases.poll_purchase(purchase.id, app_mpesa(), now)
    if purchase.status == Purchase.PAID:
        grants.provision_if_due(grants.grant_for(purchase), app_router(), now)
    state = status.purchase_state(purchase, now)
    if not _owns("purchases", purchase.id):
        # Ids are sequential: only the browser that bought sees the code and receipt.
        state.update(access_code=None, receipt=None, phone=display_phone(purchase.phone, "masked"),
                     login_needed=False)
    else:
        state["phone"] = display_phone(purchase.phone)
    return purchase, state, now


# The reference is opaque and unguessable: ids are sequential, references are not.
@bp.get("/purchases/<string(maxlength=32):reference>")
def purchase_page(reference: str):
    """Waiting, connecting, online or failed: refreshes itself while it waits."""
    purchase, state, now = _purchase_and_state(reference)
    lang = current_language()
    grant = grants.grant_for(purchase) if state["status"] in ("paid", "online") else None
    if grant is not None and _owns("purchases", purchase.id):
        _own("grants", grant.id)  # this browser was shown the grant: it may top it up
    device = session.get("device") or {}
    grant_view = _grant_view(
        grant, now, status=state["status"], access_code=state["access_code"],
        receipt=state["receipt"], login_needed=state["login_needed"],
        # Checked again on the way out: a row may predate the stricter rule.
        login_url=_clean("link-login-only",
                         purchase.link_login_only or device.get("link-login-only", "")),
        link_orig=_clean("link-orig", purchase.link_orig or device.get("link-orig", "")),
        lang=lang, mac=purchase.mac or device.get("mac", ""))
    pay_menu = _pay_menu(purchase) if _owns("purchases", purchase.id) else None
    # A failed prompt's page offers the menu: it keeps looking for that payment a while.
    menu_wait = bool(pay_menu and state["status"] in ("failed", "expired")
                     and state["reason"] not in ("used_up", "review")
                     and now - purchase.created_at < MENU_WAIT)
    return _render("customer/purchase.html", state=state, purchase=purchase,
                   package_name=purchase.package.name(lang), phone_local=state["phone"],
                   grant_view=grant_view, pay_menu=pay_menu, menu_wait=menu_wait)


@bp.get("/purchases/<string(maxlength=32):reference>.json")
def purchase_json(reference: str):
    """The purchase's state for the waiting page's script (and the agent's tests)."""
    _purchase, state, _now = _purchase_and_state(reference)
    return jsonify(state)


# -- vouchers and reconnect -------------------------------------------------------------------

def _show_grant(grant: Grant, *, login_failed: bool = False):
    """The result page for a voucher or a reconnect."""
    now = utcnow()
    lang = current_language()
    device = _device()
    _own("grants", grant.id)
    session["grant_id"] = grant.id
    standing = grants.grant_status(grant, now, login_failed=login_failed)
    purchase = grant.purchase if grant.purchase_id else None
    grant_view = _grant_view(
        grant, now, status=standing.status, access_code=grant.username,
        receipt=purchase.receipt if purchase else None,
        login_needed=standing.login_needed, login_url=device.get("link-login-only", ""),
        link_orig=device.get("link-orig", ""), lang=lang, mac=device.get("mac", ""))
    return _render("customer/access.html", grant_view=grant_view)


@bp.post("/voucher")
def voucher():
    """Log this device in with a voucher code."""
    lang = current_language()
    device = _device()
    code = request.form.get("code", "")[:40]
    try:
        grant = codes.redeem_voucher(code, mac=device["mac"], ip=device["ip"],
                                     gateway=app_router(), now=utcnow(),
                                     source=request.remote_addr or "")
    except DeviceLoginFailed as exc:
        return _show_grant(exc.grant, login_failed=True)
    except KibandaError as exc:
        return _landing(errors={"code": exc.message_for(lang)}, voucher_code=code,
                        status=exc.status)
    return _show_grant(grant)


@bp.route("/reconnect", methods=["GET", "POST"])
def reconnect_page():
    """Log this device in again with an access code or an M-Pesa receipt."""
    lang = current_language()
    device = _device()
    code = (request.form.get("code") if request.method == "POST" else
            request.args.get("code", "")) or ""
    code = code[:40]
    if request.method == "GET":
        return _render("customer/reconnect.html", code=code, error=None, device=device)
    try:
        grant = codes.reconnect(code, mac=device["mac"], ip=device["ip"],
                                gateway=app_router(), now=utcnow(),
                                source=request.remote_addr or "",
                                lookup=lambda receipt: reconcile.lookup_receipt(
                                    app_mpesa(), current_app.config, receipt))
    except DeviceLoginFailed as exc:
        return _show_grant(exc.grant, login_failed=True)
    except KibandaError as exc:
        return _render("customer/reconnect.html", exc.status, code=code,
                       error=exc.message_for(lang), device=device)
    return _show_grant(grant)


@bp.get("/access")
def access_page():
    """The last voucher / reconnect result of this browser (refreshes while connecting)."""
    grant_id = session.get("grant_id")
    if not grant_id or not _owns("grants", grant_id):
        return redirect(url_for(".reconnect_page"))
    grant = Grant.get_or_none(Grant.id == grant_id)
    if grant is None:
        raise NotFound(f"grant {grant_id}")
    grant = grants.provision_if_due(grant, app_router(), utcnow())
    return _show_grant(grant)


@bp.errorhandler(KibandaError)
def customer_error(exc: KibandaError):
    """Domain errors on customer pages: the customer's language, the site's look."""
    lang = current_language()
    if request.path.endswith(".json"):
        return jsonify(error=exc.message_for(lang)), exc.status
    return _render("customer/error.html", exc.status, message=exc.message_for(lang))


def page_not_found(message: str):
    """The customer's 404 page (the app's handler for an address nothing serves)."""
    return _render("customer/error.html", 404, message=message)


@bp.errorhandler(DatabaseError)
def customer_storage_error(exc: DatabaseError):
    """A full disk or locked database: nothing was saved or charged; say so kindly."""
    current_app.logger.error("database error on %s %s: %s", request.method, request.path, exc)
    return customer_error(StorageUnavailable(f"database error: {exc}"))


__all__ = ["bp"]
