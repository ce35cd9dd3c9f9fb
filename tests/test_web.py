"""Storage that refuses writes (a full or read-only SD card): the customer is told kindly,
nothing is recorded, nobody is charged, and Daraja is not told a callback was taken."""
from __future__ import annotations

import re

import pytest
from helpers import IP, LOGIN_URL, MAC, PAYER, Browser, make_users, package
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
