"""Storage that refuses writes (a full or read-only SD card): the customer is told kindly,
nothing is recorded, nobody is charged, and Daraja is not told a callback was taken."""
from __future__ import annotations

import re

import pytest
from helpers import IP, LOGIN_URL, MAC, PAYER, Browser, make_users, package, visible_text
from peewee import DatabaseError

from portal.models import AuditLog, Purchase, db
from portal.timeutil import utcnow

pytestmark = pytest.mark.site(live_http=True, daraja=True, packages=True)


@pytest.fixture
def storage_refuses_writes(site):
    """Every write fails, as on an SD card the kernel remounted read-only after errors.

    (A capped page count does not do: small rows still fit in the free space of pages a
    table already has, exactly as they would on a real full disk.)
    """
    db.connect(reuse_if_open=True)
    db.pragma("query_only", 1, permanent=True)
    with pytest.raises(DatabaseError):
        AuditLog.create(actor="probe", action="write")
    yield
    db.pragma("query_only", 0, permanent=True)


def test_buying_sends_no_push_and_records_nothing(site, storage_refuses_writes):
    client = site.app.test_client()
    pushes_before = site.daraja.push_requests
    answer = client.post("/buy", headers={"Accept-Language": "sw"}, data={
        "package": package("1 hour").id, "phone": PAYER, "mac": MAC, "ip": IP,
        "link-login-only": LOGIN_URL, "link-orig": ""})
    page = answer.get_data(as_text=True)
    assert answer.status_code == 503
    assert "Hakuna pesa iliyotozwa" in page  # "Nothing was charged", in Swahili
    assert "Traceback" not in page and "sqlite" not in page.lower()
    assert site.daraja.push_requests == pushes_before
    assert Purchase.select().count() == 0


def test_a_callback_is_not_acknowledged(site, storage_refuses_writes):
    """Daraja keeps a callback it could not deliver; the query settles it later."""
    body = {"Body": {"stkCallback": {"MerchantRequestID": "1", "CheckoutRequestID": "ws_CO_1",
                                     "ResultCode": 1032, "ResultDesc": "Request cancelled"}}}
    answer = site.app.test_client().post(
        f"/mpesa/callback/{site.app.config['CALLBACK_SECRET']}", json=body)
    assert answer.status_code == 503


# -- framing and the admin pages' content security policy -----------------------------------

ADMIN_PAGES = ["/admin/dashboard", "/admin/dashboard?days=30", "/admin/search?q=0712",
               "/admin/packages", "/admin/packages/new", "/admin/packages/1/edit",
               "/admin/router", "/admin/grant", "/admin/audit", "/admin/users",
               "/admin/password", "/admin/branding", "/admin/vouchers",
               "/admin/vouchers/1", "/admin/vouchers/1/print",
               "/admin/vouchers/1/print?layout=58mm", "/admin/packages/999/edit"]


def signed_in_owner(site) -> Browser:
    from portal.venue.vouchers import create_batch

    make_users(site.app)
    with site.app.app_context(), db.connection_context():
        create_batch(package("1 hour"), 3, utcnow(), "mama-njeri")
    owner = Browser(site.app)
    owner.login()
    return owner


def csp_of(response) -> dict[str, list[str]]:
    """The Content-Security-Policy header as {directive: [sources]}."""
    header = response.headers.get("Content-Security-Policy", "")
    assert header, "no Content-Security-Policy"
    return {part.split()[0]: part.split()[1:] for part in header.split(";") if part.strip()}


def test_no_page_may_be_framed(site):
    client = site.app.test_client()
    answers = [client.get("/", query_string={"mac": MAC, "ip": IP}), client.get("/healthz"),
               client.get("/admin/login"), client.get("/static/customer.css"),
               client.get("/no-such-page"), client.get("/hotspot-html/login.html"),
               client.post("/mpesa/callback/wrong-secret", json={}), client.get("/reconnect")]
    for answer in answers:
        answer.close()
    for answer in answers:
        assert answer.headers.get("X-Frame-Options") == "DENY", answer.request.path


def test_admin_pages_run_only_their_own_script_and_style(site):
    owner = signed_in_owner(site)
    refused = Browser(site.app, "192.168.88.70").post("/admin/grant", csrf=False)
    for response in [owner.get(url) for url in ADMIN_PAGES] + [owner.get("/admin/login"),
                                                                refused]:
        path = response.request.full_path
        assert response.status_code < 500, path
        policy = csp_of(response)
        assert policy["frame-ancestors"] == ["'none'"] and policy["object-src"] == ["'none'"]
        assert policy["img-src"] == ["'self'", "data:", site.url]  # a logo under PORTAL_URL;
        # data: for the QR codes and the logo a voucher sheet carries inside itself
        for directive in ("script-src", "style-src"):
            assert "'unsafe-inline'" not in policy[directive], (path, directive)
        nonce = [s for s in policy["script-src"] if s.startswith("'nonce-")]
        html = response.get_data(as_text=True)
        for tag in re.findall(r"<(?:script|style)\b[^>]*>", html):
            assert nonce and f'nonce="{nonce[0][7:-1]}"' in tag, (path, tag)
        assert not re.search(r"<[^>]+\s(?:style|on[a-z]+)\s*=", html), path


def test_admin_pages_work_in_a_browser_under_their_policy(site, browser):
    owner = signed_in_owner(site)
    cookie = owner.client.get_cookie("kibanda_session").value
    context = browser.new_context(viewport={"width": 900, "height": 900})
    context.add_cookies([{"name": "kibanda_session", "value": cookie, "url": site.url}])
    page = context.new_page()
    refused = []
    page.on("console", lambda message: refused.append(message.text)
            if "Content Security Policy" in message.text else None)
    try:
        for url in ADMIN_PAGES[:-1]:
            page.goto(site.url + url)
        page.goto(site.url + "/admin/branding")
        # The colour picker is shown by the page's own script, and it drives the preview.
        page.locator("#color-picker").wait_for(state="visible")
        page.fill("#color", "#8a1538")
        background = page.locator("#preview").evaluate("e => getComputedStyle(e).backgroundColor")
        assert background == "rgb(138, 21, 56)"
        page.goto(site.url + "/admin/vouchers/1/print")
        assert page.locator(".card").first.evaluate("e => getComputedStyle(e).width") != "auto"
        assert page.locator(".toolbar button").is_visible()
    finally:
        context.close()
    assert refused == []


# -- hostile numbers: a clear 4xx, never a 500 ----------------------------------------------

HUGE = "9" * 5000          # Python's int() refuses it (more than 4,300 digits)
BIG = "9" * 30             # fits Python's int, not SQLite's 64-bit integer
SUPERSCRIPT = "\u00b2"     # "²": str.isdigit() says yes, int() says no


def hostile_callback(checkout: str, amount=1, phone="254708374149", code="0") -> str:
    """A success callback for ``checkout`` with raw JSON values put in as written."""
    return ('{"Body": {"stkCallback": {"MerchantRequestID": "1", "CheckoutRequestID": "%s", '
            '"ResultCode": %s, "ResultDesc": "ok", "CallbackMetadata": {"Item": ['
            '{"Name": "Amount", "Value": %s}, {"Name": "MpesaReceiptNumber", "Value": "NLJ7RT61SV"}, '
            '{"Name": "PhoneNumber", "Value": %s}]}}}}' % (checkout, code, amount, phone))


def test_hostile_numbers_get_a_4xx_never_a_500(site):
    from helpers import LOST, buy

    from portal.models import CallbackRecord

    site.app.config["PROPAGATE_EXCEPTIONS"] = False  # a crash answers 500, as in production
    owner = signed_in_owner(site)
    package_form = {"name_en": "Hostile", "name_sw": "", "price": "10", "validity": "1h",
                    "rate_limit": "", "devices": "1", "data_cap": "", "sort_order": "0"}
    voucher_form = {"package": "1", "count": "5", "alphabet": "numeric", "length": "8",
                    "prefix": ""}
    served = []

    def post(url, data=None):
        changed = {k: v[:12] for k, v in (data or {}).items()
                   if v != {**package_form, **voucher_form}.get(k)}
        served.append(("POST", url[:60], changed, owner.post(url, data).status_code))

    def get(url):
        served.append(("GET", url[:60], {}, owner.get(url).status_code))

    for value in (HUGE, BIG, SUPERSCRIPT, "-1", "1e999", "abc", "1.5"):
        for field in ("price", "devices", "sort_order", "data_cap", "validity"):
            for url in ("/admin/packages/new", "/admin/packages/1/edit"):
                post(url, {**package_form, field: value})
        post("/admin/packages/new", {**package_form, "data_cap": value + "GB"})
        for field in ("package", "count", "length"):
            post("/admin/vouchers", {**voucher_form, field: value})
        post("/admin/grant", {"package": value, "note": "compensation"})
        for query in ("/admin/audit?page=", "/admin/dashboard?days=", "/?package=",
                      "/admin/search?q="):
            get(query + value)
    for number in (HUGE, BIG, "0"):
        for url in (f"/admin/vouchers/{number}", f"/admin/vouchers/{number}/print",
                    f"/admin/vouchers/{number}.csv", f"/admin/packages/{number}/edit",
                    f"/purchases/{number}", f"/purchases/{number}.json"):
            get(url)
        for url in (f"/admin/vouchers/{number}/push", f"/admin/vouchers/{number}/void",
                    f"/admin/packages/{number}/retire", f"/admin/packages/{number}/activate",
                    f"/admin/packages/{number}/sync"):
            post(url)
    crashed = [s for s in served if s[3] >= 500]
    assert crashed == [], "\n".join(str(s) for s in crashed)
    refused = [s for s in served if s[3] == 400]
    assert refused, "nothing was refused"
    assert "Price must be a whole number" in visible_text(
        owner.post("/admin/packages/new", {**package_form, "price": HUGE}).get_data(as_text=True))
    no_page = owner.get("/admin/audit?page=" + BIG + "&lang=sw")
    assert no_page.status_code == 400
    assert "Hakuna ukurasa kama huo." in visible_text(no_page.get_data(as_text=True))

    # M-Pesa callbacks: recorded as malformed, answered 400, never a 500.
    # LOST: the emulator sends no callback of its own; "1 hour" was renamed above.
    purchase = buy(site, LOST, name="1 day")
    checkout = purchase.checkout_request_id
    url = f"/mpesa/callback/{site.app.config['CALLBACK_SECRET']}"
    bodies = [hostile_callback(checkout, amount="1e999"),
              hostile_callback(checkout, amount="NaN"),
              hostile_callback(checkout, amount="Infinity"),
              hostile_callback(checkout, amount="-Infinity"),
              hostile_callback(checkout, amount=BIG),
              hostile_callback(checkout, phone="2" * 400),
              hostile_callback(checkout, phone='"' + "2" * 400 + '"'),
              hostile_callback(checkout, code=BIG),
              hostile_callback(checkout, code="NaN"),
              hostile_callback(checkout, code="1e999"),
              "[" * 10_000 + "]" * 10_000,
              '{"Body": ' * 3_000 + "1" + "}" * 3_000,
              hostile_callback(checkout) + " " * 100_000]
    client = site.app.test_client()
    answered = []
    for body in bodies:
        before = CallbackRecord.select().order_by(CallbackRecord.id.desc()).first()
        status = client.post(url, data=body, content_type="application/json").status_code
        record = CallbackRecord.select().order_by(CallbackRecord.id.desc()).first()
        recorded = record.outcome if record and record != before else None
        answered.append((body[:40] + "..." + body[-150:-60], status, recorded))
    assert [(status, recorded) for _body, status, recorded in answered] == [
        (400, "malformed")] * len(bodies), "\n".join(map(str, answered))
    too_big = client.post(url, data="{" + " " * 300_000 + "}", content_type="application/json")
    assert too_big.status_code == 413
    assert Purchase.get_by_id(purchase.id).status == Purchase.PENDING  # nothing was paid
