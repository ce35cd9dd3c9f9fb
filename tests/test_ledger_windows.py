"""Time windows: night and weekend bundles sold and usable only in their window, enforced
by the agent's own clock (``loop(now)``) on the RouterOS emulator, through the real
gateway and the Daraja emulator's STK push and query."""
from __future__ import annotations

from datetime import timedelta

import pytest
from helpers import IP, LOST, MAC, buy, make_package, nairobi

from portal.errors import ValidationError
from portal.ledger import codes, grants, windows
from portal.models import Grant, OutboxEvent, Purchase
from portal.venue.packages import create_package, update_package

pytestmark = [pytest.mark.site(live_http=True, daraja=True),
              # the tests' clock is March 2026: Daraja's emulator must not check it
              pytest.mark.daraja(decision_delay=0.0, timestamp_window=None)]

# Wednesday 11 March 2026 in Nairobi.
WED = 11


def night_bundle(app, outside: str = "refuse"):
    return make_package(app, name_en="Night week", name_sw="Usiku wiki", price=30,
                        validity="7d", hours="22:00-06:00", outside=outside)


def user_row(site, name: str) -> dict:
    return next(row for row in site.router.rows("/ip/hotspot/user") if row["name"] == name)


def paid_at(site, agent, purchase, now) -> Grant:
    """The agent's cycle at ``now`` asks M-Pesa (the callback of a LOST phone never
    comes) and settles and provisions with that clock."""
    report = agent.loop(now)
    assert report.ok, report.failed
    assert Purchase.get_by_id(purchase.id).status == Purchase.PAID
    return grants.grant_for(Purchase.get_by_id(purchase.id))


def test_night_bundle_refused_before_the_window_then_enforced_by_the_agent(site, agent):
    night_bundle(site.app)
    with pytest.raises(windows.OutsideWindow) as refused:
        buy(site, LOST, "Night week", now=nairobi(WED, 21, 50))
    assert refused.value.message_for("en") == (
        "This bundle is sold only at these times: Every night 22:00 - 06:00. "
        "Come back at 22:00.")
    assert "Kila usiku 22:00 - 06:00" in refused.value.message_for("sw")
    assert Purchase.select().count() == 0  # refused before any push

    purchase = buy(site, LOST, "Night week", now=nairobi(WED, 22, 10))
    grant = paid_at(site, agent, purchase, nairobi(WED, 22, 10, ) + timedelta(seconds=5))
    assert site.online(grant.username, IP)
    agent.loop(nairobi(WED, 23))
    assert site.online(grant.username, IP)  # online at 23:00

    # 06:00: the agent logs the customer out and disables the user, without any uplink.
    report = agent.loop(nairobi(WED + 1, 6))
    assert report.done["windows"] == 1
    assert not site.online(grant.username, IP)
    assert user_row(site, grant.username)["disabled"] == "true"

    # 07:00: the router refuses its own login page, and the portal says when it opens.
    with pytest.raises(Exception) as on_router:
        site.router.device_logs_in(grant.username, grant.password, IP, MAC)
    assert "invalid username or password" in str(on_router.value)
    with pytest.raises(windows.OutsideWindow) as portal:
        codes.reconnect(grant.username, mac=MAC, ip=IP, gateway=site.gateway,
                        now=nairobi(WED + 1, 7), source="127.0.0.1")
    assert portal.value.message_for("en").endswith("It opens again at 22:00.")
    assert not site.online()

    # A reboot at 07:30 (sessions end, ids renumbered) keeps the user disabled.
    site.router.reboot()
    assert agent.loop(nairobi(WED + 1, 7, 30)).ok
    assert user_row(site, grant.username)["disabled"] == "true"

    # 22:00: enabled again by the agent; the code logs the phone in.
    agent.loop(nairobi(WED + 1, 22))
    assert user_row(site, grant.username)["disabled"] == "false"
    codes.reconnect(grant.username, mac=MAC, ip=IP, gateway=site.gateway,
                    now=nairobi(WED + 1, 22, 1), source="127.0.0.1")
    assert site.online(grant.username, IP)


def test_night_bundle_sold_ahead_starts_at_22(site, agent):
    night_bundle(site.app, outside="wait")
    purchase = buy(site, LOST, "Night week", now=nairobi(WED, 21, 50))
    grant = paid_at(site, agent, purchase, nairobi(WED, 21, 50, ) + timedelta(seconds=5))
    # Paid at 21:50: on the router but disabled, the week counts from 22:00.
    assert grant.expires_at == nairobi(WED, 22) + timedelta(days=7)
    assert user_row(site, grant.username)["disabled"] == "true"
    assert not site.online()
    assert OutboxEvent.select().where(OutboxEvent.kind == "sale").count() == 1
    # 22:00: the agent enables the user and logs the waiting phone in, in one cycle.
    assert agent.loop(nairobi(WED, 22)).ok
    assert user_row(site, grant.username)["disabled"] == "false"
    assert site.online(grant.username, IP)
    agent.loop(nairobi(WED + 1, 6))
    assert not site.online()


def test_weekend_package_refused_on_a_wednesday(site):
    make_package(site.app, name_en="Weekend", price=100, validity="2d", days="sat,sun")
    with pytest.raises(windows.OutsideWindow) as refused:
        buy(site, LOST, "Weekend", now=nairobi(WED, 12))
    assert refused.value.message_for("en") == (
        "This bundle is sold only at these times: Saturdays and Sundays. "
        "Come back at Saturday 00:00.")
    assert "Jumamosi na Jumapili" in refused.value.message_for("sw")
    buy(site, LOST, "Weekend", now=nairobi(14, 9))  # a Saturday: sold


def test_a_reset_router_gets_the_user_back_disabled(site, agent):
    night_bundle(site.app)
    purchase = buy(site, LOST, "Night week", now=nairobi(WED, 23))
    grant = paid_at(site, agent, purchase, nairobi(WED, 23, 0) + timedelta(seconds=5))
    agent.loop(nairobi(WED + 1, 6))
    site.router.factory_reset()
    report = agent.loop(nairobi(WED + 1, 8))
    assert report.ok, report.failed
    assert user_row(site, grant.username)["disabled"] == "true"
    # Someone enables it by hand: the agent's next check puts it right.
    site.gateway.update_user(grant.username, disabled=False)
    assert agent.loop(nairobi(WED + 1, 9)).ok
    assert user_row(site, grant.username)["disabled"] == "true"


def test_window_validation_in_plain_words(app):
    with pytest.raises(ValidationError) as bad_hours:
        make_package(app, name_en="Bad", hours="25:00-06:00")
    assert bad_hours.value.message_for("en") == \
        "Hours must look like 22:00-06:00 (start and end differ)."
    with pytest.raises(ValidationError) as bad_days:
        make_package(app, name_en="Bad", days="someday")
    assert "sat, sun" in bad_days.value.message_for("sw")
    with pytest.raises(ValidationError):
        make_package(app, name_en="Bad", hours="22:00-06:00", outside="maybe")
    with app.app_context():
        package = create_package(name_en="Evening", price=20, validity="3h",
                                 days="mon-fri", hours="17:00-20:00")
        assert windows.window_words(package, "en") == "Monday to Friday, 17:00 - 20:00"
        assert windows.window_words(package, "sw") == "Jumatatu hadi Ijumaa, 17:00 - 20:00"
        # An edit that says nothing about the window keeps it.
        changed = update_package(package.id, name_en="Evening", price=25, validity="3h")
        assert (changed.window_days, changed.window_start, changed.window_end) == \
            ("01234", 17 * 60, 20 * 60)
        cleared = update_package(package.id, name_en="Evening", price=25, validity="3h",
                                 days="", hours="")
        assert not windows.windowed(cleared)


def test_night_vouchers_are_off_on_the_router_outside_their_window(site, agent):
    from portal.models import Voucher
    from portal.sim.routeros_menus import SimTrap
    from portal.venue import vouchers

    package = night_bundle(site.app)
    noon = nairobi(WED, 12)
    batch = vouchers.create_batch(package, 3, noon, "owner")
    vouchers.push_batch(batch.id, site.gateway, noon)
    codes_made = [v.code for v in Voucher.select().where(Voucher.batch == batch.id)]
    # Pushed at noon: on the router, but switched off until 22:00, so even the router's
    # own login page (the appliance down) refuses them.
    assert {user_row(site, code)["disabled"] for code in codes_made} == {"true"}
    with pytest.raises(SimTrap, match="invalid username or password"):
        site.router.device_logs_in(codes_made[0], codes_made[0], IP, MAC)
    # The portal says when it opens and does not start the voucher's clock.
    with pytest.raises(windows.OutsideWindow) as refused:
        codes.redeem_voucher(codes_made[0], mac=MAC, ip=IP, gateway=site.gateway,
                             now=nairobi(WED, 12, 5), source="127.0.0.1")
    assert refused.value.message_for("en").endswith("It opens again at 22:00.")
    assert Voucher.get(Voucher.code == codes_made[0]).state == Voucher.ON_ROUTER
    assert Grant.select().count() == 0
    assert agent.loop(nairobi(WED, 13)).ok
    assert agent.loop(nairobi(WED, 14)).done["windows"] == 0  # a quiet hour writes nothing

    # 22:00: the agent switches them on; one is typed on the router's own page.
    assert agent.loop(nairobi(WED, 22)).done["windows"] == 3
    assert {user_row(site, code)["disabled"] for code in codes_made} == {"false"}
    site.router.device_logs_in(codes_made[1], codes_made[1], IP, MAC)
    assert site.online(codes_made[1], IP)
    # 06:00: the used one is a grant now and logged out; the unused ones are off again.
    agent.loop(nairobi(WED + 1, 6))
    assert not site.online()
    assert {user_row(site, code)["disabled"] for code in codes_made} == {"true"}
    # A factory reset puts the unused ones back switched off (it is 08:00).
    site.router.factory_reset()
    assert agent.loop(nairobi(WED + 1, 8)).ok
    assert user_row(site, codes_made[2])["disabled"] == "true"
