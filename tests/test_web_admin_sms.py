"""The owner's SMS page (portal/web/admin/sms.py): messages with state, cost and why one
failed in plain words (EN and SW), the owner's choices, the total cost; in Chromium at 360 px."""
from __future__ import annotations

import pytest
from helpers import OWNER_NAME, OWNER_PASSWORD, PAYER, Browser, sms_settings, visible_text
from system_tools import ARTIFACTS

from portal.ledger import grants
from portal.models import Purchase, Setting, SmsMessage, db
from portal.timeutil import utcnow

pytestmark = pytest.mark.site(packages=True, users=True)


@pytest.fixture
def sms_site(make_site, sms_sim):
    return make_site(live_http=True, packages=True, users=True, **sms_settings(sms_sim))


def sell(site, phone: str, lang: str = "en"):
    package = site.package("1 day")
    with db.atomic():
        purchase = Purchase.create(phone=phone, package=package, amount=50, status="paid",
                                   language=lang)
        return grants.create_grant(package, "mpesa", utcnow(), purchase=purchase)


@pytest.fixture
def sent_and_refused(sms_site, sms_sim):
    """One receipt sent, one refused as blacklisted."""
    from agent.worker import Agent

    sell(sms_site, PAYER)
    sell(sms_site, "254711000406", "sw")
    worker = Agent(sms_site.app.config)
    worker.loop(utcnow())
    worker.close()
    return sms_site


def test_the_page_says_why_a_message_failed_and_what_it_cost(sent_and_refused):
    browser = Browser(sent_and_refused.app)
    browser.login()
    page = visible_text(browser.text("/admin/sms"))
    assert "The number blocked promotional messages (UserInBlacklist): ask Africa's Talking " \
           "for a transactional sender ID." in page
    assert "0711***406" in page and "0708***149" in page  # masked numbers
    assert "254711000406" not in page
    cost = SmsMessage.get(SmsMessage.state.in_(("sent", "delivered"))).cost_cents
    assert f"This month: KES 0.{cost:02d}" in page and "1 sent, 1 failed." in page
    sw = visible_text(browser.text("/admin/sms?lang=sw"))
    assert "Namba hii imezuia ujumbe wa matangazo (UserInBlacklist)" in sw


def test_the_owner_saves_choices_and_bad_input_changes_nothing(sms_site):
    browser = Browser(sms_site.app)
    browser.login()
    form = {"phone": "0711 000 777", "language": "sw", "summary_time": "21:00",
            "reminders": "on"}
    assert browser.post("/admin/sms", form).status_code == 302
    stored = {row.key: row.value for row in Setting.select().where(Setting.key.startswith("sms."))}
    assert stored["sms.owner_phone"] == "254711000777" and stored["sms.summary_time"] == "21:00"
    assert stored["sms.reminders"] == "1" and stored["sms.alerts"] == "0"
    bad = browser.post("/admin/sms", {**form, "summary_time": "9pm"})
    assert bad.status_code == 400
    assert "Type the time as HH:MM, like 21:00." in visible_text(bad.get_data(as_text=True))
    assert Setting.get_by_id("sms.summary_time").value == "21:00"


def test_an_account_out_of_credit_is_said_at_the_top(sent_and_refused, sms_sim):
    from agent.worker import Agent

    sms_sim.balance_kes = 0.0
    sell(sent_and_refused, "254711000500")
    worker = Agent(sent_and_refused.app.config)
    worker.loop(utcnow())
    worker.close()
    browser = Browser(sent_and_refused.app)
    browser.login()
    page = visible_text(browser.text("/admin/sms"))
    assert page.count("has no credit left (InsufficientBalance): top it up.") == 2


def test_sms_off_is_said_plainly(site):
    browser = Browser(site.app)
    browser.login()
    page = visible_text(browser.text("/admin/sms"))
    assert "SMS is off." in page and "No SMS yet." in page


def test_a_technician_cannot_open_it(sms_site):
    from helpers import TECH_NAME, TECH_PASSWORD

    browser = Browser(sms_site.app)
    browser.login(TECH_NAME, TECH_PASSWORD)
    assert browser.get("/admin/sms").status_code == 403


def test_the_sms_page_at_360_px_in_chromium(sent_and_refused, browser):
    site = sent_and_refused
    page = browser.new_page(viewport={"width": 360, "height": 740})
    page.goto(f"{site.url}/admin/login")
    page.fill("input[name=username]", OWNER_NAME)
    page.fill("input[name=password]", OWNER_PASSWORD)
    page.click("button[type=submit]")
    page.goto(f"{site.url}/admin/sms")
    assert "UserInBlacklist" in page.inner_text("main")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 360, width
    page.screenshot(path=str(ARTIFACTS / "admin-sms.png"), full_page=True)
    page.goto(f"{site.url}/admin/sms?lang=sw")
    page.screenshot(path=str(ARTIFACTS / "admin-sms-sw.png"), full_page=True)
