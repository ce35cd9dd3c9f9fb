"""The agent against the router: vouchers used on the router's own page, data used, and
reconcile after a reboot or a factory reset (users back, foreign users untouched, Kibanda's
stale users removed).

Everything goes over real sockets to the RouterOS emulator; each cycle is
``agent.loop(now)`` with ``now`` passed in.
"""
from __future__ import annotations

from datetime import timedelta

import pytest
from helpers import IP, MAC, USERS, Browser, visible_text

from portal.ledger import grants
from portal.models import Grant, OutboxEvent, Voucher, db
from portal.timeutil import utcnow
from portal.venue.packages import create_package

# Every cycle reads the router (the default is every 30 s).
pytestmark = pytest.mark.site(packages=True, users=True, AGENT_ROUTER_CHECK_SECONDS=0)
PHONE2_IP, PHONE2_MAC = "10.5.50.24", "AA:BB:CC:DD:EE:02"


def router_users(site) -> dict[str, dict]:
    """The router's hotspot users by name."""
    return {row["name"]: row for row in site.router.rows(USERS)}


def events(kind: str) -> list[dict]:
    """The outbox events of one kind, decoded, oldest first."""
    with db.connection_context():
        return [e.data for e in OutboxEvent.select().where(OutboxEvent.kind == kind)
                .order_by(OutboxEvent.seq)]


def paid_grant(site, now, name: str = "1 day") -> Grant:
    """A manual grant put on the router by the portal (as a sale leaves it)."""
    with db.connection_context():
        package = site.package(name)
        return grants.manual_grant(package.id, "paid cash", site.gateway, now, actor="mama")


def test_voucher_used_on_the_router_while_the_portal_is_down_shows_as_used(site, agent):
    used, unused = site.make_vouchers("1 hour", 2)
    # The portal is down: the customer types the code on the router's own login page,
    # and is online for 10 minutes before the appliance comes back.
    session = site.router.device_logs_in(used, used, IP, MAC)
    assert session["login-by"] == "http-chap"
    site.router.advance(600)
    now = utcnow()

    report = agent.loop(now)
    assert report.ok, report.failed
    with db.connection_context():
        voucher = Voucher.get(Voucher.code == used)
        grant = Grant.get(Grant.voucher == voucher.id)
        assert Voucher.get(Voucher.code == unused).state == Voucher.ON_ROUTER
    # Its clock started when the router says the customer logged in, not when we looked.
    assert voucher.state == Voucher.USED
    assert voucher.first_login_at == now - timedelta(seconds=600)
    assert voucher.expires_at == voucher.first_login_at + timedelta(hours=1)
    assert (grant.username, grant.router_state, grant.expires_at) == (
        used, Grant.ON_ROUTER, voucher.expires_at)
    [used_event] = events("voucher.used")
    assert used_event["package"] == "1 hour" and used not in str(used_event)
    assert used_event["first_login_at"] == voucher.first_login_at.replace(microsecond=0).isoformat() + "Z"
    [sale] = events("sale")
    assert (sale["amount"], sale["source"], sale["package"]) == (10, "voucher", "1 hour")

    # The owner sees it as used: on the batch page and when searching for the code.
    owner = Browser(site.app)
    owner.login()
    page = owner.text(f"/admin/vouchers/{voucher.batch_id}")
    assert 'id="count-used">1<' in page and 'id="count-on-router">1<' in page
    assert "used" in visible_text(owner.text(f"/admin/search?q={used}")).lower()

    # Seen again next cycle: nothing happens twice. At its expiry it goes off the router.
    agent.loop(now + timedelta(minutes=1))
    assert len(events("voucher.used")) == 1 and len(events("sale")) == 1
    agent.loop(voucher.expires_at + timedelta(seconds=1))
    assert used not in router_users(site) and not site.online(used)
    assert unused in router_users(site)
    with db.connection_context():
        assert Voucher.get(Voucher.code == used).state == Voucher.EXPIRED


def test_a_voucher_whose_session_already_ended_still_counts_as_used(site, agent):
    [code] = site.make_vouchers("1 hour", 1)
    site.router.device_logs_in(code, code, IP, MAC)
    site.router.advance(300)
    site.router.device_leaves(MAC)  # its uptime goes to the user's counters
    now = utcnow()
    agent.loop(now)
    with db.connection_context():
        voucher = Voucher.get(Voucher.code == code)
    assert voucher.state == Voucher.USED
    assert voucher.first_login_at == now - timedelta(seconds=300)


def test_grants_first_login_and_data_used_on_capped_packages(site, agent):
    now = utcnow()
    with db.connection_context():
        capped = create_package(name_en="1 GB", price=100, validity="1d", data_cap="1GB")
        grant = grants.manual_grant(capped.id, "paid cash", site.gateway, now, actor="mama")
    # The customer logs in on the router's own page with the access code.
    site.router.device_logs_in(grant.username, grant.password, IP, MAC)
    site.router.add_traffic(grant.username, 3_000_000, 40_000_000)
    agent.loop(now + timedelta(minutes=1))
    with db.connection_context():
        seen = Grant.get_by_id(grant.id)
    assert seen.first_login_at is not None and seen.logged_in_at is not None
    assert seen.bytes_used == 43_000_000
    # After logout the user's counters hold it; a second session adds to it.
    site.router.device_leaves(MAC)
    site.router.device_logs_in(grant.username, grant.password, PHONE2_IP, PHONE2_MAC)
    site.router.add_traffic(grant.username, 1_000_000, 1_000_000)
    agent.loop(now + timedelta(minutes=2))
    with db.connection_context():
        assert Grant.get_by_id(grant.id).bytes_used == 45_000_000


def test_reconcile_after_a_reboot_keeps_valid_users_and_removes_stale_ones(site, agent):
    now = utcnow()
    grant = paid_grant(site, now)
    codes = site.make_vouchers("1 hour", 2)
    gateway = site.gateway
    # A user the technician made by hand, and one Kibanda made that nothing covers any more
    # (its grant lives in a database that was restored from an older backup).
    gateway.add_user("staff-laptop", "s3cret", "default", comment="office")
    gateway.add_user("71234567", "71234567", "default", comment="kibanda mpesa purchase 999")
    before = {name: row[".id"] for name, row in router_users(site).items()}
    site.router.reboot()

    report = agent.loop(now + timedelta(minutes=1))
    assert report.ok, report.failed
    assert report.done["reconcile"] == 1
    after = router_users(site)
    assert set(after) == {grant.username, *codes, "staff-laptop"}
    assert after["staff-laptop"]["comment"] == "office"
    assert after[grant.username][".id"] != before[grant.username]  # renumbered by the reboot
    # The agent works with the new ids: the grant still expires off the router.
    agent.loop(grant.expires_at + timedelta(seconds=1))
    assert grant.username not in router_users(site)
    assert "staff-laptop" in router_users(site)


def test_reconcile_after_a_factory_reset_puts_profiles_and_users_back(site, agent):
    now = utcnow()
    grant = paid_grant(site, now, "1 week")
    codes = site.make_vouchers("1 hour", 3)
    expired = paid_grant(site, now - timedelta(days=2))  # a day pass from two days ago
    wanted_before = {name: row for name, row in router_users(site).items()
                     if name != expired.username}
    site.router.factory_reset()
    assert router_users(site) == {}

    report = agent.loop(now + timedelta(minutes=1))
    assert report.ok, report.failed
    after = router_users(site)
    assert set(after) == {grant.username, *codes}
    for name, row in after.items():
        assert (row["profile"], row["password"], row["comment"]) == (
            wanted_before[name]["profile"], wanted_before[name]["password"],
            wanted_before[name]["comment"])
    profiles = {row["name"]: row for row in site.router.rows("/ip/hotspot/user/profile")}
    week = site.package("1 week")
    assert profiles[week.profile_name]["rate-limit"] == "3M/8M"
    assert profiles[week.profile_name]["shared-users"] == "3"
    # The grant's user carries the time left as its safety net (a week less a minute).
    assert after[grant.username]["limit-uptime"] == "6d23h59m"
    # A second cycle finds nothing to do.
    assert agent.loop(now + timedelta(minutes=2)).done["reconcile"] == 0


def test_reconcile_work_per_cycle_is_bounded(site, agent):
    gateway = site.gateway
    for n in range(5):
        gateway.add_user(f"5555000{n}", "x", "default", comment=f"kibanda manual grant {900 + n}")
    agent.router_batch = 2
    now = utcnow()
    counts = [agent.loop(now + timedelta(seconds=s)).done["reconcile"] for s in range(4)]
    assert counts == [2, 2, 1, 0]
    assert router_users(site) == {}


def test_router_down_is_a_wait_and_the_next_cycle_reconciles(site, agent):
    now = utcnow()
    grant = paid_grant(site, now)
    site.router.factory_reset()
    site.router.refuse_logins = True
    report = agent.loop(now)
    assert report.ok and report.done["reconcile"] == 0
    site.router.refuse_logins = False
    report = agent.loop(now + timedelta(seconds=2))
    assert report.ok and grant.username in router_users(site)


def test_a_voucher_that_cannot_start_does_not_hold_up_the_others(site, agent):
    clashing, fine = site.make_vouchers("1 hour", 2)
    now = utcnow()
    with db.connection_context():
        # An access code drawn earlier happens to be one voucher's code.
        with db.atomic():
            grants.create_grant(site.package("1 hour"), Grant.MANUAL, now, username=clashing)
    site.router.device_logs_in(clashing, clashing, IP, MAC)
    site.router.device_logs_in(fine, fine, PHONE2_IP, PHONE2_MAC)
    report = agent.loop(now)
    assert report.ok, report.failed
    with db.connection_context():
        states = {v.code: v.state for v in Voucher.select()}
    assert states == {clashing: Voucher.ON_ROUTER, fine: Voucher.USED}


def test_a_write_the_router_does_not_confirm_is_named_and_tried_again(site, agent):
    from portal.ledger import router_state

    now = utcnow()
    grant = paid_grant(site, now)
    site.gateway.remove_user(grant.username)  # someone deleted the paid user by hand
    snapshot = site.gateway.hotspot_snapshot()
    # The router answers the login of the next session, then the link drops before it
    # answers the add: nobody knows whether it applied.
    site.router.drop_after(1)
    report = router_state.reconcile(site.gateway, snapshot, now)
    assert report.users_added == [] and len(report.problems) == 1
    assert report.problems[0].startswith(f"user {grant.username} not put back")
    assert grant.username not in router_users(site)
    # The agent's next cycle puts it back (and reads it back).
    result = agent.loop(now + timedelta(seconds=1))
    assert result.ok and result.done["reconcile"] == 1
    assert grant.username in router_users(site)
