"""Top-ups: more time or more data added to the same grant and access code, through the
ordinary money path (STK push, callback or query, one credit per receipt), against the
RouterOS and Daraja emulators."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest
from helpers import IP, LOGIN_URL, LOST, MAC, SOURCE, TWICE, buy, make_package, package, wait_for

from portal.errors import ValidationError
from portal.ledger import grants, purchases, topups
from portal.models import CallbackRecord, Grant, OutboxEvent, Purchase
from portal.timeutil import utcnow
from portal.venue import reports

pytestmark = [pytest.mark.site(live_http=True, daraja=True, packages=True),
              # the tests move their clock ahead: Daraja's emulator must not check it
              pytest.mark.daraja(decision_delay=0.0, timestamp_window=None)]


def settle_by_query(site, purchase, now) -> Purchase:
    return purchases.poll_purchase(purchase.id, site.mpesa, now, force=True)


def first_grant(site, name="1 hour", now=None) -> Grant:
    now = now or utcnow()
    purchase = settle_by_query(site, buy(site, LOST, name, now=now), now)
    grant = grants.provision_grant(grants.grant_for(purchase).id, site.gateway, now)
    assert site.online(grant.username, IP)
    return grant


def top_up(site, grant, name, phone=LOST, now=None) -> Purchase:
    return purchases.start_purchase(
        package(name).id, phone, mac=MAC, ip=IP, link_login_only=LOGIN_URL,
        link_orig="", mpesa=site.mpesa, callback_url=purchases.callback_url(site.app.config),
        now=now or utcnow(), gateway=site.gateway, source=SOURCE, topup_of=grant)


def user_row(site, name: str) -> dict:
    return next(row for row in site.router.rows("/ip/hotspot/user") if row["name"] == name)


def sales() -> list[dict]:
    return [json.loads(e.payload) for e in OutboxEvent.select().where(OutboxEvent.kind == "sale")
            .order_by(OutboxEvent.seq)]


def test_a_time_top_up_extends_the_same_grant_and_code(site):
    now = utcnow()
    grant = first_grant(site, now=now)
    site.router.advance(20 * 60)  # 20 minutes online on the router's clock
    later = now + timedelta(minutes=20)
    # (a different amount: Daraja refuses the same amount to one phone within 2 minutes)
    purchase = settle_by_query(site, top_up(site, grant, "1 day", now=later), later)
    assert purchase.status == Purchase.PAID and purchase.topup_of == grant.id
    extended = grants.provision_if_due(grants.grant_for(purchase), site.gateway, later)
    assert Grant.select().count() == 1
    assert extended.username == grant.username
    assert extended.expires_at == grant.expires_at + timedelta(days=1)
    # On the router: the 20 minutes used plus the 1 day 40 min now left, still online.
    assert user_row(site, grant.username)["limit-uptime"] == "1d1h"
    assert site.online(grant.username, IP)
    assert [(s["amount"], s.get("topup")) for s in sales()] == [(10, None), (50, True)]


def test_a_data_top_up_raises_the_cap_on_the_router(site):
    now = utcnow()
    make_package(site.app, name_en="1 GB", price=50, validity="1d", data_cap="1GB")
    make_package(site.app, name_en="500 MB", price=30, validity="1d", data_cap="500MB")
    grant = first_grant(site, "1 GB", now=now)
    assert user_row(site, grant.username)["limit-bytes-total"] == str(10**9)
    # Which packages fit: data for a data grant, never the time packages.
    assert [p.name_en for p in topups.topup_packages(grant)] == ["500 MB", "1 GB"]
    with pytest.raises(ValidationError):
        top_up(site, grant, "1 day", now=now)
    purchase = settle_by_query(site, top_up(site, grant, "500 MB", now=now), now)
    grants.provision_if_due(grants.grant_for(purchase), site.gateway, now)
    assert user_row(site, grant.username)["limit-bytes-total"] == str(1_500_000_000)
    assert Grant.get_by_id(grant.id).extra_bytes == 500_000_000


def test_a_duplicate_callback_for_a_top_up_changes_nothing(site):
    grant = first_grant(site)
    purchase = top_up(site, grant, "1 day", phone=TWICE)  # Daraja calls back twice
    assert wait_for(lambda: CallbackRecord.select().count() == 2, timeout=10)
    assert sorted(r.outcome for r in CallbackRecord.select()) == ["duplicate", "settled"]
    assert Purchase.get_by_id(purchase.id).status == Purchase.PAID
    extended = Grant.get_by_id(grant.id)
    assert extended.expires_at == grant.expires_at + timedelta(days=1)  # added once
    assert Grant.select().count() == 1
    assert [s.get("topup") for s in sales()] == [None, True]
    # The owner's search by the top-up's receipt finds the grant it added to.
    found = reports.search(Purchase.get_by_id(purchase.id).receipt)
    assert [g.username for g in found.grants] == [grant.username]
    assert wait_for(lambda: user_row(site, grant.username)["limit-uptime"] != "1h")


def test_an_ended_grant_cannot_be_topped_up(site):
    now = utcnow()
    grant = first_grant(site, now=now)
    with pytest.raises(ValidationError) as ended:
        top_up(site, grant, "1 hour", now=now + timedelta(hours=2))
    assert ended.value.message_for("en") == "This access has ended. Please buy a new package."
    assert not topups.can_top_up(Grant.get_by_id(grant.id), now + timedelta(hours=2))
