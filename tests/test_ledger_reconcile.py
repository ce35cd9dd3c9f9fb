"""Pull Transactions against the Daraja emulator, through the agent's cycle: an STK payment
whose callback and queries were all lost is found and its device logged in, a query-only
credit gets its receipt, payments made from the menu while the site was offline become
sales, paging and overlap never credit twice; and "I already paid" on Reconnect."""
from __future__ import annotations

from datetime import timedelta

import pytest
from helpers import IP, LOST, MAC, PAYER, buy

from portal.errors import ValidationError
from portal.ledger import codes, reconcile
from portal.models import C2BPayment, Grant, Purchase
from portal.timeutil import utcnow

NOMINATED = "254708374149"
pytestmark = pytest.mark.site(daraja=True, packages=True,
                              MPESA_PULL_NOMINATED_NUMBER=NOMINATED)
QUIET = "254711222333"  # pays, but its callback is lost and STK Query is down


def fresh(purchase: Purchase) -> Purchase:
    return Purchase.get_by_id(purchase.id)


def test_pull_settles_a_purchase_whose_callback_and_queries_were_lost(site, agent):
    site.daraja.set_phone(QUIET, callback="lost", query_outage=True)
    purchase = buy(site, QUIET, answered=True)
    report = agent.loop(utcnow())
    assert report.ok, report.failed
    paid = fresh(purchase)
    receipt = site.daraja.transaction(purchase.checkout_request_id)["receipt"]
    assert (paid.status, paid.receipt) == ("paid", receipt)
    assert site.online(Grant.get(Grant.purchase == purchase.id).username, IP)
    assert site.daraja.c2b.pull_registrations[site.daraja.shortcode]["nominated_number"] \
        == NOMINATED
    # The next pulls (overlapping windows) see the same record and change nothing.
    agent.loop(utcnow() + timedelta(minutes=6))
    assert Grant.select().where(Grant.purchase == purchase.id).count() == 1
    assert site.daraja.pull_requests >= 2


def test_pull_fills_in_the_receipt_of_a_purchase_credited_by_query(site, agent):
    purchase = buy(site, LOST, answered=True)  # callback lost; the query says paid
    agent.loop(utcnow() + timedelta(seconds=3))  # the query is due, then the pull
    paid = fresh(purchase)
    assert paid.status == "paid"
    assert paid.receipt == site.daraja.transaction(purchase.checkout_request_id)["receipt"]
    assert C2BPayment.select().where(C2BPayment.status == "known").count() == 1
    assert Grant.select().count() == 1


def test_menu_payments_made_while_offline_become_sales_across_pages(site, agent):
    site.daraja.c2b.pull_page_size = 2
    made = [site.daraja.pay_from_menu(f"25471100000{i}", 50, "WIFI") for i in range(5)]
    made.append(site.daraja.pay_from_menu("254711000009", 10, till=True))
    assert all(p["confirmation_status"] is None for p in made)  # no URL registered
    agent.loop(utcnow())
    sales = {p.receipt: p for p in Purchase.select().where(Purchase.status == "paid")}
    assert set(sales) == {p["receipt"] for p in made}
    assert sorted(p.package.name_en for p in sales.values()) == ["1 day"] * 5 + ["1 hour"]
    agent.loop(utcnow() + timedelta(minutes=10))
    assert Grant.select().count() == 6


def test_the_pull_waits_its_interval_and_is_off_without_a_nominated_number(site, agent):
    now = utcnow()
    agent.loop(now)
    agent.loop(now + timedelta(minutes=1))
    assert site.daraja.pull_requests == 1
    assert reconcile.pull(site.mpesa, {"MPESA_PULL_NOMINATED_NUMBER": ""}, now,
                          force=True) == 0


def test_a_receipt_typed_before_the_appliance_knew_it_logs_the_device_in(site):
    paid = site.daraja.pay_from_menu("254711000001", 50, "WIFI")  # offline: no pull yet

    def lookup(receipt):
        return reconcile.lookup_receipt(site.mpesa, site.app.config, receipt)

    grant = codes.reconnect(paid["receipt"].lower(), mac=MAC, ip=IP, gateway=site.gateway,
                            now=utcnow(), source="10.5.50.1", lookup=lookup)
    assert grant.package.name_en == "1 day" and site.online(grant.username, IP)
    # Not found at M-Pesa: said plainly, nothing changes, and it counts as a wrong guess.
    with pytest.raises(ValidationError, match="not found") as refused:
        codes.reconnect("QWE1234567", mac=MAC, ip=IP, gateway=site.gateway, now=utcnow(),
                        source="10.5.50.1", lookup=lookup)
    assert "could not find an M-Pesa payment" in refused.value.message_for("en")
    assert Grant.select().count() == 1


def test_a_typed_receipt_in_review_says_the_staff_must_check_it(site):
    paid = site.daraja.pay_from_menu("254711000001", 30, "WIFI")  # no package at KES 30

    def lookup(receipt):
        return reconcile.lookup_receipt(site.mpesa, site.app.config, receipt)

    with pytest.raises(ValidationError, match="in review") as review:
        codes.reconnect(paid["receipt"], mac=MAC, ip=IP, gateway=site.gateway, now=utcnow(),
                        source="10.5.50.1", lookup=lookup)
    assert "staff must check" in review.value.message_for("en")
    assert C2BPayment.get().status == "review"


def test_the_stk_query_still_works_when_pull_is_set_up(site, agent):
    purchase = buy(site, PAYER, answered=True)
    agent.loop(utcnow())
    assert fresh(purchase).status == "paid" and Grant.select().count() == 1
    assert site.online(None, IP)


def test_a_failed_pull_is_reported_and_waits_its_interval(site, agent):
    now = utcnow()
    site.daraja.fail_next("busy", n=1, on="query")
    report = agent.loop(now)
    assert "pull_transactions" in report.failed and report.done["settle"] == 0
    agent.loop(now + timedelta(minutes=1))
    assert site.daraja.pull_requests == 1  # Daraja is not asked again every cycle
    paid = site.daraja.pay_from_menu("254711000001", 50, "WIFI")
    assert agent.loop(now + timedelta(minutes=6)).ok
    assert Purchase.get(Purchase.receipt == paid["receipt"]).status == "paid"
