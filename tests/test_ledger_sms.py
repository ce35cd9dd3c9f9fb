"""The SMS outbox (portal/ledger/sms.py) against the Africa's Talking emulator over HTTP:
receipts queued with the sale and sent by the agent, refusals never retried, network
failures retried and sent once, delivery reports, and SMS off when not configured."""
from __future__ import annotations

from datetime import timedelta

import pytest
import requests
from helpers import CANCELS, PAYER, buy, sms_settings, wait_for

from portal.ledger import c2b, grants
from portal.models import Grant, Purchase, SmsMessage, db
from portal.timeutil import utcnow

pytestmark = pytest.mark.site(live_http=True, daraja=True, packages=True)


@pytest.fixture
def sms_site(make_site, sms_sim):
    """A live site with SMS through the emulator, which reports delivery to the site."""
    site = make_site(live_http=True, daraja=True, packages=True, **sms_settings(sms_sim))
    sms_sim.delivery_report_url = (f"{site.url}/sms/delivery/"
                                   f"{site.app.config['SMS_DELIVERY_SECRET']}")
    return site


@pytest.fixture
def sms_agent(sms_site):
    """The agent of the SMS site."""
    from agent.worker import Agent

    worker = Agent(sms_site.app.config)
    yield worker
    worker.close()


def paid_by_stk(site, phone=PAYER) -> Grant:
    """A customer pays by STK push; the callback settles it on the live site."""
    purchase = buy(site, phone)
    assert wait_for(lambda: Purchase.get_by_id(purchase.id).status == "paid", timeout=10)
    return Grant.get(Grant.purchase == purchase.id)


def test_a_receipt_with_the_access_code_follows_an_stk_payment(sms_site, sms_agent, sms_sim):
    grant = paid_by_stk(sms_site)
    queued = SmsMessage.get(SmsMessage.key == f"receipt:{grant.id}")
    assert queued.state == "queued" and sms_sim.requests == 0  # the customer never waits
    report = sms_agent.loop(utcnow())
    assert report.ok, report.failed
    [sent] = sms_sim.messages
    assert sent["to"] == "+" + PAYER and grant.username in sent["message"]
    assert "1 hour paid" in sent["message"] and len(sent["message"]) <= 160
    row = SmsMessage.get_by_id(queued.id)
    assert row.state == "sent" and row.provider_id == sent["id"] and row.cost_cents > 0
    # The emulator reports delivery to the site's URL.
    assert wait_for(lambda: SmsMessage.get_by_id(queued.id).state == "delivered", timeout=5)
    sms_agent.loop(utcnow() + timedelta(minutes=5))
    assert len(sms_sim.messages) == 1  # never sent twice


def test_a_receipt_follows_a_payment_from_the_mpesa_menu(sms_site, sms_agent, sms_sim):
    """The customer ignored the prompt and paid the page's account code from the menu."""
    site = sms_site
    confirmation, validation = c2b.c2b_urls(site.app.config)
    site.mpesa.register_c2b_urls(confirmation, validation)
    site.daraja.set_phone(CANCELS)
    purchase = buy(site, CANCELS)
    assert wait_for(lambda: Purchase.get_by_id(purchase.id).status == "failed", timeout=10)
    payment = site.daraja.pay_from_menu(CANCELS, purchase.amount, account=purchase.account_code)
    assert payment["confirmation_status"] == 200
    grant = Grant.get(Grant.purchase == purchase.id)
    assert Purchase.get_by_id(purchase.id).receipt == payment["receipt"]
    sms_agent.loop(utcnow())
    [sent] = sms_sim.messages
    assert sent["to"] == "+" + CANCELS and grant.username in sent["message"]
    assert SmsMessage.get(SmsMessage.key == f"receipt:{grant.id}").state == "sent"


def test_a_blacklisted_number_is_failed_and_never_tried_again(sms_site, sms_agent, sms_sim):
    grant = paid_by_stk(sms_site, phone="254711000406")  # 406 UserInBlacklist
    sms_agent.loop(utcnow())
    row = SmsMessage.get(SmsMessage.key == f"receipt:{grant.id}")
    assert row.state == "failed" and row.failure_reason == "UserInBlacklist"
    assert row.failure_code == 406 and row.attempts == 1
    asked = sms_sim.requests
    for minutes in (1, 10, 60):
        sms_agent.loop(utcnow() + timedelta(minutes=minutes))
    assert sms_sim.requests == asked
    assert SmsMessage.get_by_id(row.id).state == "failed"


def test_a_network_failure_is_retried_then_sent_once(sms_site, sms_agent, sms_sim):
    grant = paid_by_stk(sms_site)
    sms_sim.fail_next(1, "drop")  # the connection closes unanswered, nothing sent
    now = utcnow()
    sms_agent.loop(now)
    row = SmsMessage.get(SmsMessage.key == f"receipt:{grant.id}")
    assert row.state == "queued" and row.attempts == 1 and row.last_error
    assert sms_sim.messages == []
    sms_agent.loop(now + timedelta(seconds=5))  # before the backoff: not asked again
    assert sms_sim.requests == 1
    sms_sim.fail_next(1, "http503")
    sms_agent.loop(now + timedelta(seconds=31))
    assert SmsMessage.get_by_id(row.id).state == "queued" and sms_sim.requests == 2
    sms_agent.loop(now + timedelta(minutes=5))
    sms_agent.loop(now + timedelta(minutes=30))
    assert [m["to"] for m in sms_sim.messages] == ["+" + PAYER]
    assert SmsMessage.get_by_id(row.id).state in ("sent", "delivered")
    assert SmsMessage.get_by_id(row.id).attempts == 3


def test_a_message_left_sending_by_a_crash_is_never_sent_again(sms_site, sms_agent, sms_sim):
    grant = paid_by_stk(sms_site)
    now = utcnow()
    # The agent claimed the row and died before writing the provider's answer down.
    SmsMessage.update(state="sending", attempts=1, next_attempt_at=now).where(
        SmsMessage.key == f"receipt:{grant.id}").execute()
    sms_agent.loop(now + timedelta(minutes=10))
    row = SmsMessage.get(SmsMessage.key == f"receipt:{grant.id}")
    assert row.state == "failed" and row.failure_reason == "Unknown"
    assert sms_sim.requests == 0


def test_delivery_reports_change_the_state_and_forged_ones_nothing(sms_site, sms_agent, sms_sim):
    sms_sim.auto_deliver = False
    grant = paid_by_stk(sms_site, phone="254711000200")
    sms_agent.loop(utcnow())
    row = SmsMessage.get(SmsMessage.key == f"receipt:{grant.id}")
    url = sms_sim.delivery_report_url
    # Forged: a wrong secret is a 404; an unknown id or nonsense is 200 and changes nothing.
    forged = url.rsplit("/", 1)[0] + "/not-the-secret"
    assert requests.post(forged, data={"id": row.provider_id, "status": "Failed"},
                         timeout=5).status_code == 404
    assert requests.post(url, data={"id": "ATXid_unknown", "status": "Failed"},
                         timeout=5).status_code == 200
    assert requests.post(url, data={"id": "x" * 5000, "status": "\x00" * 100},
                         timeout=5).status_code == 200
    assert requests.post(url, data=b"\xff\xfe" * 100, timeout=5).status_code == 200
    assert SmsMessage.get_by_id(row.id).state == "sent"
    assert sms_sim.deliver(row.provider_id, "Failed", "UserIsInactive") == 200
    failed = SmsMessage.get_by_id(row.id)
    assert failed.state == "failed" and failed.failure_reason == "UserIsInactive"
    # A late "Success" after the final word changes nothing.
    assert sms_sim.deliver(row.provider_id, "Success") == 200
    assert SmsMessage.get_by_id(row.id).state == "failed"


def test_without_sms_settings_there_are_no_rows_no_requests_no_errors(site, agent, sms_sim):
    grant = paid_by_stk(site)
    report = agent.loop(utcnow())
    assert report.ok, report.failed
    assert report.done["sms"] == 0
    assert SmsMessage.select().count() == 0 and sms_sim.requests == 0
    assert grant.username  # the sale itself is untouched


def test_a_receipt_is_queued_in_the_sale_transaction(sms_site):
    """A sale rolled back takes its receipt with it; a committed one has exactly one."""
    package = sms_site.package("1 hour")
    purchase = Purchase.create(phone=PAYER, package=package, amount=50, status="paid",
                               language="sw")
    with pytest.raises(RuntimeError), db.atomic():
        grants.create_grant(package, Grant.MPESA, utcnow(), purchase=purchase)
        raise RuntimeError("the sale fails after the grant")
    assert SmsMessage.select().count() == 0
    with db.atomic():
        grant = grants.create_grant(package, Grant.MPESA, utcnow(), purchase=purchase)
    [row] = SmsMessage.select()
    assert row.key == f"receipt:{grant.id}" and row.language == "sw" and "Msimbo" in row.text


def test_a_top_up_gets_its_own_receipt_with_the_new_time(sms_site, sms_agent, sms_sim):
    from helpers import IP, LOGIN_URL, MAC, SOURCE, package

    from portal.ledger import purchases

    grant = paid_by_stk(sms_site)
    assert sms_agent.loop(utcnow()).ok
    top = purchases.start_purchase(
        package("1 day").id, PAYER, mac=MAC, ip=IP, link_login_only=LOGIN_URL, link_orig="",
        mpesa=sms_site.mpesa, callback_url=purchases.callback_url(sms_site.app.config),
        now=utcnow(), gateway=sms_site.gateway, source=SOURCE, topup_of=grant)
    assert wait_for(lambda: Purchase.get_by_id(top.id).status == "paid", timeout=10)
    assert Grant.select().count() == 1
    assert sms_agent.loop(utcnow()).ok
    first, second = sms_sim.messages
    # the same access code, the top-up's package, and the grant's new time left (a day and
    # an hour, shown as "1 day" or more)
    assert grant.username in second["message"] and "1 day paid" in second["message"]
    assert first["id"] != second["id"] and len(second["message"]) <= 160
    assert SmsMessage.select().where(SmsMessage.kind == "receipt").count() == 2
