"""Top-up and free-trial pages through plain HTML forms, against the RouterOS and Daraja
emulators: the Buy more button, the grant proven by the browser's session or the typed
code, and the free trial once per phone and once per device."""
from __future__ import annotations

import re

import pytest
from helpers import IP, LOGIN_URL, MAC, PAYER, make_package, package, visible_text, wait_for

from portal.ledger import grants
from portal.models import CodeAttempt, Grant, OutboxEvent, Purchase
from portal.venue.trial import save_trial

pytestmark = pytest.mark.site(live_http=True, daraja=True, packages=True)

DEVICE = {"mac": MAC, "ip": IP, "link-login-only": LOGIN_URL, "link-orig": "http://example.com/"}
OTHER = {"mac": "AA:BB:CC:DD:EE:02", "ip": "10.5.50.24", "link-login-only": LOGIN_URL,
         "link-orig": ""}


def text(response) -> str:
    return response.get_data(as_text=True)


def paid_purchase_page(site, client) -> tuple[str, Grant]:
    """Buy the 1 hour package as a phone does and wait for the page to show it online."""
    bought = client.post("/buy", data={"package": package("1 hour").id, "phone": PAYER,
                                       **DEVICE})
    assert bought.status_code == 303, text(bought)
    url = bought.headers["Location"]
    assert wait_for(lambda: 'data-status="online"' in text(client.get(url)), timeout=10)
    reference = url.rsplit("/", 1)[-1]
    return text(client.get(url)), grants.grant_for(Purchase.get(Purchase.reference == reference))


def test_buy_more_from_the_purchase_page_tops_up_the_same_code(site, client):
    page, grant = paid_purchase_page(site, client)
    link = re.search(r'id="buy-more" class="button secondary" href="([^"]+)"', page)
    assert link, page
    topup = text(client.get(link.group(1)))
    shown = visible_text(topup)
    assert "Buy more" in shown and grant.username in shown
    assert "A time package adds its time to the time this code has left." in shown
    chosen = client.post("/topup", data={"grant": grant.id, "package": package("1 day").id,
                                         "phone": "0712345678", **DEVICE})
    assert chosen.status_code == 303, text(chosen)
    assert wait_for(lambda: 'data-status="online"' in text(client.get(chosen.headers["Location"])),
                    timeout=10)
    [first, second] = Purchase.select().order_by(Purchase.id)
    assert second.topup_of == grant.id and second.status == Purchase.PAID
    assert Grant.select().count() == 1
    extended = Grant.get_by_id(grant.id)
    assert (extended.expires_at - grant.expires_at).days == 1
    assert OutboxEvent.select().where(OutboxEvent.kind == "sale").count() == 2
    # Swahili, the same page.
    sw = visible_text(text(client.get(link.group(1) + "&lang=sw")))
    assert "Nunua zaidi" in sw


def test_another_browser_must_type_the_code(site, client):
    _page, grant = paid_purchase_page(site, client)
    stranger = site.app.test_client()
    page = visible_text(text(stranger.get(f"/topup?grant={grant.id}")))
    assert "Type your access code." in page and grant.username not in page
    # An id alone buys nothing: the purchase form without a held grant asks for the code.
    sneaky = stranger.post("/topup", data={"grant": grant.id, "package": package("1 day").id,
                                           "phone": "0712345678", **OTHER})
    assert sneaky.status_code == 400 and Purchase.select().count() == 1
    wrong = stranger.post("/topup", data={"code": "12345678", **OTHER})
    assert "That code is not valid" in visible_text(text(wrong))
    # Both count as wrong codes: the id without the session, and the wrong code.
    assert CodeAttempt.select().where(CodeAttempt.ok == False).count() == 2  # noqa: E712
    right = stranger.post("/topup", data={"code": grant.username, **OTHER})
    assert right.status_code == 303
    assert grant.username in visible_text(text(stranger.get(right.headers["Location"])))


def test_landing_shows_windows_in_plain_words(site, client):
    make_package(site.app, name_en="Night", name_sw="Usiku", price=30, validity="8h",
                 hours="22:00-06:00")
    make_package(site.app, name_en="Weekend", name_sw="Wikendi", price=100, validity="2d",
                 days="sat,sun")
    page = visible_text(text(client.get("/", query_string=DEVICE)))
    assert "Every night 22:00 - 06:00" in page and "Saturdays and Sundays" in page
    sw = visible_text(text(client.get("/", query_string={**DEVICE, "lang": "sw"})))
    assert "Kila usiku 22:00 - 06:00" in sw and "Jumamosi na Jumapili" in sw


def test_free_trial_once_per_phone_and_once_per_device(site, client):
    assert "Try it free" not in text(client.get("/", query_string=DEVICE))
    with site.app.app_context():
        save_trial("owner", "", minutes="15", package_id=package("1 hour").id)
    landing = visible_text(text(client.get("/", query_string=DEVICE)))
    assert "15 minutes free, once a day for each phone and device." in landing
    first = client.post("/trial", data={"phone": "0712345678", **DEVICE})
    assert 'data-status="online"' in text(first), text(first)
    assert "Free trial" in visible_text(text(first))
    trial = Grant.get(Grant.source == Grant.TRIAL)
    assert site.online(trial.username, IP)
    assert OutboxEvent.select().where(OutboxEvent.kind == "sale").count() == 0  # no sale
    # The same device with another phone number: refused.
    again = client.post("/trial", data={"phone": "0722000111", **DEVICE})
    assert again.status_code == 400
    assert "once a day for each phone and each device" in visible_text(text(again))
    # The same phone from another device: refused.
    site.device_joins(OTHER["ip"], OTHER["mac"])
    other = site.app.test_client()
    refused = other.post("/trial", data={"phone": "0712 345 678", **OTHER})
    assert refused.status_code == 400
    assert Grant.select().where(Grant.source == Grant.TRIAL).count() == 1
    # A new phone on a new device: its own trial.
    site.device_joins("10.5.50.25", "AA:BB:CC:DD:EE:03")
    third = site.app.test_client().post("/trial", data={
        "phone": "0733000222", "mac": "AA:BB:CC:DD:EE:03", "ip": "10.5.50.25"})
    assert 'data-status="online"' in text(third)
