"""The owner's SMS (portal/venue/sms.py): the daily summary at the owner's time, driven by
the agent's ``loop(now)``; router and uplink alerts; the owner's choices; and every text
Kibanda sends fitting one GSM-7 SMS in English and Swahili at its longest values."""
from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from helpers import PAYER, nairobi, sms_settings

from portal.errors import ValidationError
from portal.ledger import sms
from portal.models import Purchase, SmsMessage
from portal.sms import gsm7
from portal.venue import sms as owner_sms

OWNER_PHONE = "254711000777"


@pytest.fixture
def sms_site(make_site, sms_sim):
    """A site with SMS through the emulator (no live HTTP needed here)."""
    return make_site(daraja=True, packages=True, **sms_settings(sms_sim))


@pytest.fixture
def sms_agent(sms_site):
    from agent.worker import Agent

    worker = Agent(sms_site.app.config)
    yield worker
    worker.close()


def owner_wants(summary_time="21:00", **choices):
    return owner_sms.save_choices("mama-njeri", "127.0.0.1", phone="0711 000 777",
                                  language=choices.pop("language", "en"),
                                  summary_time=summary_time,
                                  reminders=choices.pop("reminders", True),
                                  alerts=choices.pop("alerts", True))


def test_every_text_fits_one_gsm7_sms_at_its_longest_in_english_and_swahili():
    site, package, code = "W" * 60, "P" * 60, "9" * 8
    when = datetime(2026, 12, 31, 20, 59)
    for lang in ("en", "sw"):
        texts = [
            sms.receipt_text(site=site, package=package, code=code, until=when, lang=lang,
                             seconds_left=999 * 86400 + 23 * 3600 + 59 * 60),
            sms.reminder_text(site=site, code=code, until=when, lang=lang),
            owner_sms.summary_text(site=site, day="31/12", total=999_999_999, mpesa=999_999_999,
                                   mpesa_count=99_999, vouchers=999_999_999,
                                   voucher_count=99_999, sessions=99_999, review=9_999,
                                   lang=lang),
            owner_sms.router_alert_text(site=site, since=when, minutes=999_999, lang=lang),
            owner_sms.uplink_alert_text(site=site, since=when - timedelta(days=999),
                                        back=when, lang=lang),
        ]
        for text in texts:
            assert gsm7.is_gsm7(text), text
            assert gsm7.septets(text) <= 160, (lang, gsm7.septets(text), text)
        assert texts[0] != sms.receipt_text(site=site, package=package, code=code, until=when,
                                            lang="en" if lang == "sw" else "sw", seconds_left=60)


def test_a_package_name_outside_gsm7_never_makes_the_receipt_ucs2():
    text = sms.receipt_text(site="Mama\u2019s \U0001F4F6", package="Saa 1 \u201cHaraka\u201d",
                            code="12345678", seconds_left=3600,
                            until=datetime(2026, 12, 2, 9), lang="en")
    assert gsm7.is_gsm7(text) and "Mama's" in text and '"Haraka"' in text


def test_the_daily_summary_goes_at_the_owners_time_once_a_day(sms_site, sms_agent, sms_sim):
    owner_wants("21:00")
    Purchase.create(phone=PAYER, package=sms_site.package("1 day"), amount=50, status="paid",
                    settled_at=nairobi(2, 12, month=12), created_at=nairobi(2, 12, month=12))
    sms_agent.loop(nairobi(2, 20, 59, month=12))
    assert sms_sim.requests == 0  # not before
    sms_agent.loop(nairobi(2, 21, 0, month=12))
    [summary] = sms_sim.messages
    assert summary["to"] == "+" + OWNER_PHONE
    assert "KES 50 today" in summary["message"] and "M-Pesa KES 50 (1)" in summary["message"]
    for minute in (1, 30, 59):
        sms_agent.loop(nairobi(2, 22, minute, month=12))
    assert len(sms_sim.messages) == 1  # once a day
    sms_agent.loop(nairobi(3, 20, 0, month=12))
    assert len(sms_sim.messages) == 1
    sms_agent.loop(nairobi(3, 21, 5, month=12))
    assert len(sms_sim.messages) == 2 and "KES 0 today" in sms_sim.messages[1]["message"]


def test_the_summary_speaks_the_owners_language(sms_site, sms_agent, sms_sim):
    owner_wants("07:30", language="sw")
    sms_agent.loop(nairobi(2, 7, 31, month=12))
    [summary] = sms_sim.messages
    assert "leo" in summary["message"] and "Vya kukagua 0" in summary["message"]


def test_no_summary_without_a_time(sms_site, sms_agent, sms_sim):
    owner_wants("")
    sms_agent.loop(nairobi(2, 23, 59, month=12))
    assert sms_sim.requests == 0 and SmsMessage.select().count() == 0


def test_the_owners_choices_are_checked_and_bad_ones_change_nothing(sms_site):
    owner_wants("21:00")
    for bad in (dict(phone="12345", summary_time="21:00"),
                dict(phone="0711000777", summary_time="25:00"),
                dict(phone="", summary_time="21:00")):
        with pytest.raises(ValidationError) as refused:
            owner_sms.save_choices("mama-njeri", "", language="sw", reminders=False,
                                   alerts=False, **bad)
        assert refused.value.message_for("sw") != refused.value.message_for("en")
    choices = owner_sms.owner_choices()
    assert (choices.phone, choices.summary_time, choices.reminders) == (OWNER_PHONE, "21:00",
                                                                        True)


def test_a_router_down_longer_than_the_limit_alerts_the_owner_once(sms_site, sms_agent, sms_sim):
    owner_wants("")
    sms_agent.router_check_seconds = 0  # read the router every cycle
    start = nairobi(2, 10, month=12)
    sms_site.router.stop()
    try:
        for minute in (0, 5, 14):
            sms_agent.loop(start + timedelta(minutes=minute))
        assert sms_sim.requests == 0  # not yet 15 minutes
        sms_agent.loop(start + timedelta(minutes=16))
        [alert] = sms_sim.messages
        assert alert["to"] == "+" + OWNER_PHONE and "router has not answered since" in alert["message"]
        assert "(16 min)" in alert["message"]
        sms_agent.loop(start + timedelta(minutes=40))
        assert len(sms_sim.messages) == 1
    finally:
        sms_site.router.start()


def test_an_uplink_alert_leaves_when_the_link_is_back_and_says_how_long(sms_site, sms_agent,
                                                                        sms_sim):
    owner_wants("")
    start = nairobi(2, 10, month=12)
    sms.queue("probe", "alert", PAYER, "a message waiting for the link", start)
    sms_sim.fail_next(3, "drop")
    sms_agent.loop(start)  # the link is down
    sms_agent.loop(start + timedelta(minutes=20))
    sms_agent.loop(start + timedelta(minutes=45))
    assert sms_sim.messages == []
    sms_agent.loop(start + timedelta(minutes=75))  # it is back
    texts = [m["message"] for m in sms_sim.messages]
    assert "a message waiting for the link" in texts
    [alert] = [t for t in texts if "internet link was down" in t]
    assert "1 h 15 min" in alert and "from 02/12 10:00 to 02/12 11:15" in alert


def test_a_quiet_enrolled_site_notices_its_link_by_the_hub(sms_site, sms_agent, sms_sim,
                                                           live_hub):
    """No SMS to send while the link is down: the hub sync's heartbeats tell the agent."""
    from helpers import enroll_site

    from portal.timeutil import utcnow

    owner_wants("")
    enroll_site(sms_site.app.config, live_hub)
    start = utcnow()
    sms_site.app.config["UPSTREAM_URL"] = "http://127.0.0.1:9"  # the link is down
    for minute in (0, 20, 45):
        assert sms_agent.loop(start + timedelta(minutes=minute)).done["sync"] == 0
    assert sms_sim.requests == 0  # nothing was waiting, nothing was tried
    sms_site.app.config["UPSTREAM_URL"] = live_hub  # it is back
    assert sms_agent.loop(start + timedelta(minutes=75)).done["sync"] > 0
    sms_agent.loop(start + timedelta(minutes=76))
    [alert] = [m["message"] for m in sms_sim.messages if "internet link was down" in m["message"]]
    assert "down for 56 min" in alert  # from the first cycle that saw it down (minute 20) to 76
    sms_agent.loop(start + timedelta(minutes=90))
    assert len(sms_sim.messages) == 1


def test_alerts_switched_off_send_nothing(sms_site, sms_agent, sms_sim):
    owner_wants("", alerts=False)
    sms_agent.router_check_seconds = 0
    start = nairobi(2, 10, month=12)
    sms_site.router.stop()
    try:
        for minute in (0, 20, 60):
            sms_agent.loop(start + timedelta(minutes=minute))
    finally:
        sms_site.router.start()
    assert sms_sim.requests == 0


def test_ten_minutes_left_once_per_grant_and_the_owner_can_switch_it_off(sms_site, sms_agent,
                                                                         sms_sim):
    from portal.ledger import grants
    from portal.models import db

    owner_wants("")
    now = nairobi(2, 10, month=12)
    package = sms_site.package("1 hour")
    with db.atomic():
        purchase = Purchase.create(phone=PAYER, package=package, amount=10, status="paid",
                                   language="sw")
        grant = grants.create_grant(package, "mpesa", now, purchase=purchase)
    sms_agent.loop(now)  # the receipt
    assert len(sms_sim.messages) == 1
    sms_agent.loop(now + timedelta(minutes=45))
    assert len(sms_sim.messages) == 1
    sms_agent.loop(now + timedelta(minutes=51))
    reminder = sms_sim.messages[-1]["message"]
    assert len(sms_sim.messages) == 2 and "Zimebaki dakika 10" in reminder
    assert grant.username in reminder
    for minute in (52, 55, 59):
        sms_agent.loop(now + timedelta(minutes=minute))
    assert len(sms_sim.messages) == 2
    # Switched off: the next customer's grant gets its receipt only.
    owner_wants("", reminders=False)
    with db.atomic():
        other = Purchase.create(phone="254711000300", package=package, amount=10, status="paid")
        grants.create_grant(package, "mpesa", now, purchase=other)
    sms_agent.loop(now + timedelta(minutes=1))
    sms_agent.loop(now + timedelta(minutes=55))
    assert [m["to"] for m in sms_sim.messages].count("+254711000300") == 1
