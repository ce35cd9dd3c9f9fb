"""Packages from the admin pages: validation messages, router profile sync, retry, retire."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from helpers import Browser, make_users, visible_text

from portal.models import AuditLog, Package, db

PROFILES = "/ip/hotspot/user/profile"
SCREENS = Path(__file__).resolve().parent.parent / "artifacts" / "screens"
GOOD = {"name_en": "1 day", "name_sw": "Siku 1", "price": "50", "validity": "1d",
        "rate_limit": "2M/5M", "devices": "2", "data_cap": "2GB", "sort_order": "1"}


def owner(app) -> Browser:
    make_users(app)
    browser = Browser(app)
    browser.login()
    return browser


def profile(sim, name: str) -> dict | None:
    return next((row for row in sim.rows(PROFILES) if row["name"] == name), None)


def test_invalid_package_shows_the_reason_and_keeps_the_input(app, router_sim):
    browser = owner(app)
    cases = [({"price": "12.50"}, "Price must be a whole number of shillings from 1 to 250,000."),
             ({"price": "300000"}, "Price must be a whole number of shillings from 1 to 250,000."),
             ({"validity": "forever"}, "Validity must look like 1h, 1d, 7d or 30d"),
             ({"rate_limit": "fast"}, "Speed must look like 2M/5M"),
             ({"devices": "11"}, "Devices must be from 1 to 10."),
             ({"data_cap": "lots"}, "Data cap must look like 500MB or 2GB."),
             ({"name_en": ""}, "Give the package a name")]
    for change, message in cases:
        response = browser.post("/admin/packages/new", {**GOOD, **change})
        assert response.status_code == 400, change
        html = response.get_data(as_text=True)
        assert message in visible_text(html), change
        assert 'value="Siku 1"' in html  # what was typed is still there
    with app.app_context(), db.connection_context():
        assert Package.select().count() == 0
    assert profile(router_sim, "kb-1-day") is None


def test_created_package_is_on_the_router_and_edits_follow(app, router_sim):
    browser = owner(app)
    response = browser.post("/admin/packages/new", GOOD, follow_redirects=True)
    page = visible_text(response.get_data(as_text=True))
    assert "The router has the package 1 day." in page
    assert "on the router since" in page and "KES 50" in page
    row = profile(router_sim, "kb-1-day")
    assert row["rate-limit"] == "2M/5M" and row["shared-users"] == "2"

    with app.app_context(), db.connection_context():
        package_id = Package.get(Package.name_en == "1 day").id
    edit = browser.post(f"/admin/packages/{package_id}/edit",
                        {**GOOD, "price": "60", "rate_limit": "3M/8M", "devices": "3"},
                        follow_redirects=True)
    assert "KES 60" in visible_text(edit.get_data(as_text=True))
    row = profile(router_sim, "kb-1-day")
    assert row["rate-limit"] == "3M/8M" and row["shared-users"] == "3"

    retired = browser.post(f"/admin/packages/{package_id}/retire", follow_redirects=True)
    assert "Retired: not sold" in visible_text(retired.get_data(as_text=True))
    with app.app_context(), db.connection_context():
        assert not Package.get_by_id(package_id).active
        actions = [e.action for e in AuditLog.select()]
    assert {"package.create", "package.update", "package.retire"} <= set(actions)


def test_router_down_shows_its_error_and_retry_puts_it_there(app, router_sim):
    browser = owner(app)
    router_sim.refuse_logins = True
    response = browser.post("/admin/packages/new", GOOD, follow_redirects=True)
    page = visible_text(response.get_data(as_text=True))
    assert "Saved, but the router did not take it" in page
    assert "not on the router" in page and "Retry" in page
    assert profile(router_sim, "kb-1-day") is None

    router_sim.refuse_logins = False
    with app.app_context(), db.connection_context():
        package_id = Package.get(Package.name_en == "1 day").id
    retry = browser.post(f"/admin/packages/{package_id}/sync", follow_redirects=True)
    page = visible_text(retry.get_data(as_text=True))
    assert "The router has the package 1 day." in page and "on the router since" in page
    assert profile(router_sim, "kb-1-day")["rate-limit"] == "2M/5M"


def test_a_second_package_with_the_same_name_is_refused_by_the_form(app, router_sim):
    browser = owner(app)
    assert browser.post("/admin/packages/new", GOOD).status_code in (302, 303)
    again = browser.post("/admin/packages/new", {**GOOD, "name_en": "1 DAY", "price": "60"})
    assert again.status_code == 400
    assert "There is already a package called 1 DAY." in visible_text(again.get_data(as_text=True))
    sw = browser.post("/admin/packages/new?lang=sw", {**GOOD, "name_en": "1 Day"})
    assert "Tayari kuna kifurushi kinachoitwa 1 Day." in visible_text(sw.get_data(as_text=True))
    with app.app_context(), db.connection_context():
        assert [p.price for p in Package.select()] == [50]


def test_slow_speed_after_the_cap_is_checked_in_plain_words_en_and_sw(app, router_sim):
    browser = owner(app)
    cases = [
        ({"data_cap": "", "fair_use_rate": "256k/256k"},
         "A slow speed after the cap needs a data cap. Give a data cap, or leave the slow "
         "speed empty.",
         "Kasi ndogo baada ya kikomo inahitaji kikomo cha data. Weka kikomo cha data, au "
         "acha kasi ndogo wazi."),
        ({"fair_use_rate": "3M/3M"},
         "The slow speed after the cap must not be faster than the package's own speed "
         "(2M/5M).",
         "Kasi ndogo baada ya kikomo isizidi kasi ya kifurushi chenyewe (2M/5M)."),
        ({"fair_use_rate": "slow"},
         "Slow speed must look like 256k/256k (upload/download).",
         "Kasi ndogo iandikwe kama 256k/256k (kupakia/kupakua)."),
    ]
    for change, english, swahili in cases:
        for lang, message in (("en", english), ("sw", swahili)):
            response = browser.post(f"/admin/packages/new?lang={lang}", {**GOOD, **change})
            assert response.status_code == 400, change
            assert message in visible_text(response.get_data(as_text=True)), (lang, change)
    with app.app_context(), db.connection_context():
        assert Package.select().count() == 0
    assert profile(router_sim, "kb-1-day") is None


def test_a_fair_use_package_gets_its_slow_profile_and_says_so(app, router_sim):
    browser = owner(app)
    response = browser.post("/admin/packages/new", {**GOOD, "fair_use_rate": "256k/256k"},
                            follow_redirects=True)
    assert "Data 2 GB, then 256k/256k" in visible_text(response.get_data(as_text=True))
    assert profile(router_sim, "kb-1-day")["rate-limit"] == "2M/5M"
    slow = profile(router_sim, "kb-1-day-slow")
    assert slow["rate-limit"] == "256k/256k" and slow["shared-users"] == "2"
    with app.app_context(), db.connection_context():
        package_id = Package.get(Package.name_en == "1 day").id
    form = browser.get(f"/admin/packages/{package_id}/edit").get_data(as_text=True)
    assert 'name="fair_use_rate" type="text" value="256k/256k"' in form


@pytest.mark.parametrize("lang", ["en", "sw"])
def test_the_package_form_on_a_phone_screen(make_site, browser, lang):
    site = make_site(live_http=True, users=True)
    owner_browser = Browser(site.app)
    owner_browser.login()
    cookie = owner_browser.client.get_cookie("kibanda_session").value
    context = browser.new_context(viewport={"width": 360, "height": 740})
    context.add_cookies([{"name": "kibanda_session", "value": cookie, "url": site.url}])
    page = context.new_page()
    try:
        page.goto(f"{site.url}/admin/packages/new?lang={lang}")
        for name, value in {**GOOD, "data_cap": "", "fair_use_rate": "256k/256k"}.items():
            page.fill(f'input[name="{name}"]', value)
        page.locator("main form button[type=submit]").last.click()
        SCREENS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENS / f"package-form-fair-use-error-{lang}.png"),
                        full_page=True)
        alert = page.locator("p.flash.error").inner_text()
        assert alert.startswith("A slow speed after the cap needs a data cap" if lang == "en"
                                else "Kasi ndogo baada ya kikomo inahitaji kikomo cha data")
        page.fill('input[name="data_cap"]', "1GB")
        page.locator("main form button[type=submit]").last.click()
        page.wait_for_url(re.compile(r"/admin/packages$"))
        page.screenshot(path=str(SCREENS / f"packages-fair-use-{lang}.png"), full_page=True)
        assert page.evaluate("document.documentElement.scrollWidth") <= 360
    finally:
        context.close()


def test_a_night_window_from_the_form_shows_in_the_list_and_the_activity_log(app, router_sim):
    browser = owner(app)
    bad = browser.post("/admin/packages/new", {**GOOD, "hours": "22:00-22:00"})
    assert bad.status_code == 400
    assert "Hours must look like 22:00-06:00 (start and end differ)." in \
        visible_text(bad.get_data(as_text=True))
    night = {**GOOD, "name_en": "Weekend nights", "days": ["4", "5"], "hours": "22:00-06:00",
             "outside": "wait"}
    response = browser.post("/admin/packages/new", night, follow_redirects=True)
    assert response.status_code == 200
    with app.app_context(), db.connection_context():
        package = Package.get(Package.name_en == "Weekend nights")
        assert (package.window_days, package.window_start, package.window_end,
                package.window_sale) == ("45", 22 * 60, 6 * 60, "wait")
        entry = AuditLog.select().where(AuditLog.action == "package.create").get()
        assert "Fridays and Saturdays, nights 22:00 - 06:00, sold ahead" in entry.detail
    form = browser.get(f"/admin/packages/{package.id}/edit").get_data(as_text=True)
    assert 'value="22:00-06:00"' in form
    assert re.search(r'value="5" checked', form) and not re.search(r'value="6" checked', form)
    sw = visible_text(browser.get(f"/admin/packages/{package.id}/edit?lang=sw").get_data(as_text=True))
    assert "Nyakati za kifurushi (si lazima)" in sw
