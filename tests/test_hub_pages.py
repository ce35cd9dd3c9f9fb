"""The operator's pages: sign-in (no default account), every site, a site's sales, CSV."""
from __future__ import annotations

import csv
import io
import re

import pytest
from helpers import HubSiteKey, sale_event, visible_text
from system_tools import ARTIFACTS

from hub.models import db as hub_db

HTTPS = "https://hub.example.co.ke"


@pytest.fixture
def operator(hub_app):
    """An operator account, as ``kibanda hub operator add`` makes it: (email, password)."""
    from hub.operators import add_operator

    with hub_db.connection_context():
        _operator, password = add_operator("Ops@Example.co.ke")
    return "ops@example.co.ke", password


class OperatorBrowser:
    """The hub's test client over HTTPS (the session cookie is Secure), with CSRF."""

    def __init__(self, app):
        self.client = app.test_client()

    def get(self, url: str, **kwargs):
        return self.client.get(url, base_url=HTTPS, **kwargs)

    def post(self, url: str, data: dict, csrf: bool = True):
        if csrf:
            html = self.get("/login").get_data(as_text=True)
            data = {**data, "csrf_token": re.search(r'name="csrf_token" value="([^"]+)"',
                                                    html).group(1)}
        return self.client.post(url, data=data, base_url=HTTPS)

    def login(self, email: str, password: str):
        return self.post("/login", {"email": email, "password": password})


@pytest.fixture
def with_sales(hub_app):
    """Two sites; cafe-1 has three sales today (Nairobi) and one last month."""
    from portal.timeutil import utcnow

    client = hub_app.test_client()
    cafe = HubSiteKey(client, "cafe-1", "Mama Njeri Cafe")
    HubSiteKey(client, "shop-2", "Kamau Shop")
    now = utcnow().strftime("%Y-%m-%dT%H:%M:%SZ")
    assert cafe.send([sale_event(1, 50, now), sale_event(2, 20, now), sale_event(3, 250, now),
                      sale_event(4, 800, "2020-01-15T08:00:00Z")]).status_code == 200
    heartbeat = {"id": "hb-1", "seq": 5, "kind": "heartbeat", "at": now,
                 "data": {"router_ok": False, "active_sessions": 3, "backlog": 7,
                          "last_sync_at": now, "agent_version": "0.1.0"}}
    assert cafe.send([heartbeat]).status_code == 200


def test_pages_need_a_signed_in_operator_and_there_is_no_default_one(hub_app):
    browser = OperatorBrowser(hub_app)
    assert browser.get("/").status_code == 302
    assert browser.get("/sites/cafe-1/sales.csv").status_code == 302
    for email, password in [("admin", "admin"), ("admin@admin", "password"), ("", "")]:
        answer = browser.login(email, password)
        assert answer.status_code == 401
        assert "Wrong email or password." in visible_text(answer.get_data(as_text=True))


def test_sign_in_and_see_every_site_with_its_money(hub_app, operator, with_sales):
    browser = OperatorBrowser(hub_app)
    answer = browser.login(*operator)
    assert answer.status_code == 302
    cookie = answer.headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    page = browser.get("/")
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    text = visible_text(page.get_data(as_text=True))
    assert "Mama Njeri Cafe" in text and "Kamau Shop" in text
    assert re.search(r"Mama Njeri Cafe cafe-1 Last seen \d\d \w{3} \d{4} \d\d:\d\d "
                     r"Waiting to send 7 Router down Today KES 320", text), text
    assert "Today KES 320" in text
    assert len(page.get_data()) < 60_000


def test_a_site_s_sales_and_their_csv(hub_app, operator, with_sales):
    browser = OperatorBrowser(hub_app)
    browser.login(*operator)
    text = visible_text(browser.get("/sites/cafe-1").get_data(as_text=True))
    assert "TC00000003" in text and "KES" in text
    export = browser.get("/sites/cafe-1/sales.csv")
    assert export.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(export.get_data(as_text=True))))
    assert sorted(int(row["amount_kes"]) for row in rows) == [20, 50, 250, 800]
    assert rows[-1]["paid_at_nairobi"] == "2020-01-15 11:00:00"
    assert browser.get("/sites/nobody").status_code == 404
    assert browser.get("/sites/../etc").status_code == 404


def test_forms_without_the_csrf_token_change_nothing(hub_app, operator):
    browser = OperatorBrowser(hub_app)
    assert browser.post("/login", {"email": operator[0], "password": operator[1]},
                        csrf=False).status_code == 400
    assert browser.get("/").status_code == 302


def test_sign_out_ends_the_session_and_wrong_passwords_lock_out(hub_app, operator):
    browser = OperatorBrowser(hub_app)
    browser.login(*operator)
    assert browser.get("/").status_code == 200
    assert browser.post("/logout", {}).status_code == 302
    assert browser.get("/").status_code == 302
    for _ in range(5):
        assert browser.login(operator[0], "wrong").status_code == 401
    locked = browser.login(*operator)
    assert locked.status_code == 429
    assert "Too many wrong passwords" in locked.get_data(as_text=True)


def test_operator_add_prints_a_generated_password(runner, tmp_path, hub_database_url):
    from portal.cli import main

    def run(*args):
        return runner.invoke(main, ["hub", "--hub-instance", str(tmp_path / "hub"), "operator",
                                    "add", *args], env={"KIBANDA_HUB_DATABASE_URL": hub_database_url})

    made = run("ops@example.co.ke")
    assert made.exit_code == 0, made.output
    assert re.search(r"password: \S{16}", made.output)
    assert run("ops@example.co.ke").exit_code == 2
    assert run("not-an-email").exit_code == 2
    hub_db.obj.close()


@pytest.mark.parametrize("hub_database_url", ["sqlite"], indirect=True)
def test_pages_at_360_px_in_chromium(hub_app, operator, with_sales, live_hub, browser):
    page = browser.new_page(viewport={"width": 360, "height": 740})
    page.goto(f"{live_hub}/login")
    page.screenshot(path=str(ARTIFACTS / "hub-login.png"), full_page=True)
    page.fill("input[name=email]", operator[0])
    page.fill("input[name=password]", operator[1])
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_hub}/")
    assert "Mama Njeri Cafe" in page.inner_text("main")
    page.screenshot(path=str(ARTIFACTS / "hub-sites.png"), full_page=True)
    page.click("text=Mama Njeri Cafe")
    assert "Download all sales (CSV)" in page.inner_text("main")
    page.screenshot(path=str(ARTIFACTS / "hub-site.png"), full_page=True)
    # Nothing is wider than the phone's screen.
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    page.close()
