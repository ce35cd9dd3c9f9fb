"""Packages from the admin pages: validation messages, router profile sync, retry, retire."""
from __future__ import annotations

import re

from helpers import Browser, make_users, visible_text

from portal.models import AuditLog, Package, db

PROFILES = "/ip/hotspot/user/profile"
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
