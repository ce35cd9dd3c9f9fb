"""Admin access: setup once, sign in and out, lockout, CSRF, roles, password change, audit."""
from __future__ import annotations

from helpers import (
    LAN, OWNER_NAME, OWNER_PASSWORD, TECH_NAME, TECH_PASSWORD, Browser, csrf_of,
    make_package, make_users, visible_text,
)

from portal.models import AdminUser, AuditLog, Package, db


def audit_actions(app) -> list[tuple[str, str, str]]:
    with app.app_context(), db.connection_context():
        return [(e.actor, e.action, e.address) for e in AuditLog.select().order_by(AuditLog.id)]


def test_setup_page_creates_the_first_owner_once_then_is_gone(app):
    browser = Browser(app)
    assert browser.get("/admin/login").location.endswith("/admin/setup")
    page = browser.text("/admin/setup")
    assert "Create the owner account" in page
    short = browser.post("/admin/setup", {"username": "mama", "password": "short",
                                          "confirm": "short"})
    assert short.status_code == 400
    assert "Use at least 10 characters." in visible_text(short.get_data(as_text=True))
    done = browser.post("/admin/setup", {"username": "mama", "password": "a long password",
                                         "confirm": "a long password"})
    assert done.status_code == 302 and done.location.endswith("/admin/dashboard")
    assert "Welcome! Your owner account is ready." in browser.text("/admin/dashboard")
    # Closed for everyone now, signed in or not, GET or POST.
    stranger = Browser(app, "192.168.88.66")
    assert stranger.get("/admin/setup").status_code == 404
    again = stranger.post("/admin/setup", {"username": "evil", "password": "0123456789ab",
                                           "confirm": "0123456789ab"})
    assert again.status_code == 404
    with app.app_context(), db.connection_context():
        assert [u.username for u in AdminUser.select()] == ["mama"]
    assert ("mama", "admin.create", LAN) in audit_actions(app)


def test_no_default_credentials_exist(app):
    with app.app_context(), db.connection_context():
        assert AdminUser.select().count() == 0
    browser = Browser(app)
    for name, password in [("admin", "admin"), ("admin", ""), ("owner", "owner")]:
        response = browser.post("/admin/login", {"username": name, "password": password})
        assert response.status_code == 302 and response.location.endswith("/admin/setup")
    assert browser.get("/admin/dashboard").status_code == 302


def test_sign_in_wrong_password_and_sign_out(app):
    make_users(app)
    browser = Browser(app)
    wrong = browser.login(password="not-the-password")
    assert wrong.status_code == 401
    assert "Wrong username or password." in visible_text(wrong.get_data(as_text=True))
    unknown = browser.login(username="nobody")
    assert "Wrong username or password." in visible_text(unknown.get_data(as_text=True))
    assert browser.get("/admin/dashboard").location.startswith("/admin/login")

    ok = browser.login()
    assert ok.status_code == 302 and ok.location.endswith("/admin/dashboard")
    assert "Sign out (mama-njeri)" in visible_text(browser.text("/admin/dashboard"))

    out = browser.post("/admin/logout")
    assert out.location.endswith("/admin/login")
    assert "You are signed out." in browser.text("/admin/login")
    assert browser.get("/admin/dashboard").status_code == 302
    actions = [a for _, a, _ in audit_actions(app)]
    assert actions.count("admin.login_failed") == 2
    assert "admin.login" in actions and "admin.logout" in actions


def test_five_failures_lock_that_user_from_that_address_only(app):
    make_users(app)
    attacker = Browser(app, "192.168.88.77")
    for _ in range(4):
        assert attacker.login(password="guess").status_code == 401
    fifth = attacker.login(password="guess")
    assert fifth.status_code == 401
    text = visible_text(fifth.get_data(as_text=True))
    assert "Too many failed sign-ins. Try again after" in text and "(Nairobi time)" in text
    # Even the right password is refused while locked.
    locked = attacker.login()
    assert "Too many failed sign-ins" in visible_text(locked.get_data(as_text=True))
    assert attacker.get("/admin/dashboard").status_code == 302
    # The owner at the counter (another address) still gets in.
    owner = Browser(app, LAN)
    assert owner.login().location.endswith("/admin/dashboard")
    # Another user from the attacker's address is not locked.
    assert attacker.login(TECH_NAME, TECH_PASSWORD).location.endswith("/admin/router")


def test_post_without_csrf_token_is_refused_and_changes_nothing(app, router_sim):
    make_users(app)
    browser = Browser(app)
    browser.login()
    form = {"name_en": "Bad day", "price": "30", "validity": "1d", "devices": "1"}
    refused = browser.post("/admin/packages/new", form, csrf=False)
    assert refused.status_code == 400
    assert "This form has expired" in refused.get_data(as_text=True)
    forged = browser.client.post("/admin/packages/new", data={**form, "csrf_token": "x" * 43},
                                 environ_base={"REMOTE_ADDR": LAN})
    assert forged.status_code == 400
    out = browser.post("/admin/logout", csrf=False)
    assert out.status_code == 400
    with app.app_context(), db.connection_context():
        assert Package.select().count() == 0
    assert [r["name"] for r in router_sim.rows("/ip/hotspot/user/profile")] == ["default"]
    assert browser.get("/admin/dashboard").status_code == 200  # still signed in
    # A login POST without the token is refused too (no login CSRF).
    fresh = Browser(app, "192.168.88.51")
    assert fresh.post("/admin/login", {"username": OWNER_NAME, "password": OWNER_PASSWORD},
                      csrf=False).status_code == 400


def test_technician_sees_packages_and_router_but_no_money(app):
    make_users(app)
    make_package(app)
    tech = Browser(app)
    assert tech.login(TECH_NAME, TECH_PASSWORD).location.endswith("/admin/router")
    assert "1 hour" in tech.text("/admin/packages")
    assert "Router" in tech.text("/admin/router")
    nav = tech.text("/admin/packages")
    assert "/admin/dashboard" not in nav and "/admin/vouchers" not in nav
    for url in ["/admin/dashboard", "/admin/vouchers", "/admin/search?q=0712345678",
                "/admin/grant", "/admin/audit", "/admin/users", "/admin/vouchers/1.csv"]:
        response = tech.get(url)
        assert response.status_code == 403, url
        assert "Only the owner can see this page." in response.get_data(as_text=True)
    made = tech.post("/admin/vouchers", {"package": "1", "count": "5"})
    assert made.status_code == 403


def test_password_change_needs_current_password_and_ends_other_sessions(app):
    make_users(app)
    phone, laptop = Browser(app), Browser(app, "192.168.88.51")
    phone.login()
    laptop.login()
    wrong = phone.post("/admin/password", {"current": "nope", "new": "a brand new one",
                                           "confirm": "a brand new one"}, follow_redirects=True)
    assert "Your current password is not right." in wrong.get_data(as_text=True)
    ok = phone.post("/admin/password", {"current": OWNER_PASSWORD, "new": "a brand new one",
                                        "confirm": "a brand new one"}, follow_redirects=True)
    assert "Your password is changed." in ok.get_data(as_text=True)
    assert phone.get("/admin/dashboard").status_code == 200
    assert laptop.get("/admin/dashboard").status_code == 302  # signed out elsewhere
    assert Browser(app, "192.168.88.52").login(password="a brand new one").status_code == 302
    assert ("mama-njeri", "admin.password_change", LAN) in audit_actions(app)


def test_owner_adds_a_technician_and_reads_the_audit_log(app):
    make_users(app)
    owner = Browser(app)
    owner.login()
    owner.post("/admin/users", {"username": "wanjiku", "password": "fundi-mpya-2024",
                                "role": "technician"})
    assert "wanjiku" in owner.text("/admin/users")
    page = visible_text(owner.text("/admin/audit"))
    assert "Account added technician wanjiku" in page
    assert "Signed in" in page and LAN in page
    assert csrf_of(owner.text("/admin/users"))
    # The same lines in Swahili, and a line written before entries kept their values
    # (v10 and older) still reads: its action and its English detail.
    with app.app_context(), db.connection_context():
        AuditLog.create(actor="mama-njeri", action="package.create", address=LAN,
                        detail="#1 1 hour, KES 10, 1h, 1 device")
    page = visible_text(owner.text("/admin/audit?lang=sw"))
    assert "Akaunti imeongezwa fundi wanjiku" in page
    assert "Ameingia" in page and "admin.login" not in page
    assert "Kifurushi kimeongezwa #1 1 hour, KES 10, 1h, 1 device" in page


def copied_cookie(browser: Browser) -> str:
    """The session cookie as someone who copied it off the browser would hold it."""
    return browser.client.get_cookie("kibanda_session").value


def browser_with(app, cookie: str, address: str = "192.168.88.99") -> Browser:
    """Another browser carrying a copied session cookie."""
    thief = Browser(app, address)
    thief.client.set_cookie("kibanda_session", cookie)
    return thief


def test_sign_out_ends_the_session_even_for_a_copied_cookie(app):
    make_users(app)
    owner = Browser(app)
    owner.login()
    stolen = copied_cookie(owner)
    assert browser_with(app, stolen).get("/admin/dashboard").status_code == 200
    owner.post("/admin/logout")
    replayed = browser_with(app, stolen).get("/admin/dashboard")
    assert replayed.status_code == 302 and replayed.location.startswith("/admin/login")
    # Signing in again works, and the old cookie stays dead.
    assert owner.login().status_code == 302
    assert owner.get("/admin/dashboard").status_code == 200
    assert browser_with(app, stolen).get("/admin/dashboard").status_code == 302


def test_password_change_keeps_this_session_and_kills_copies_of_the_old_one(app):
    make_users(app)
    owner = Browser(app)
    owner.login()
    stolen = copied_cookie(owner)
    owner.post("/admin/password", {"current": OWNER_PASSWORD, "new": "a brand new one",
                                   "confirm": "a brand new one"})
    assert owner.get("/admin/dashboard").status_code == 200
    assert browser_with(app, stolen).get("/admin/dashboard").status_code == 302


def test_technician_sees_who_is_online_but_no_codes_on_the_router_page(app, router_sim):
    """A code is as good as cash: the owner's guide says technicians never see one."""
    from portal.web import app_router

    make_users(app)
    package = make_package(app)
    owner = Browser(app)
    owner.login()
    with app.app_context(), db.connection_context():
        from portal.ledger.grants import manual_grant
        from portal.timeutil import utcnow

        code = manual_grant(package.id, "test", app_router(app), utcnow(), "mama").username
        app_router(app).login(code, code, "10.5.50.23", "AA:BB:CC:DD:EE:01")
    assert code in owner.text("/admin/router")
    tech = Browser(app)
    tech.login(TECH_NAME, TECH_PASSWORD)
    page = tech.text("/admin/router")
    assert "10.5.50.23" in page and "AA:BB:CC:DD:EE:01" in page and "Kick" in page
    assert code not in page  # not shown, not in a hidden field either
    active_id = router_sim.rows("/ip/hotspot/active")[0][".id"]
    asked = tech.post(f"/admin/sessions/{active_id}/kick", {"back": "/admin/router"})
    assert code not in asked.get_data(as_text=True)
    kicked = tech.post(f"/admin/sessions/{active_id}/kick",
                       {"back": "/admin/router", "confirmed": "yes",
                        "user": "AA:BB:CC:DD:EE:01"}, follow_redirects=True)
    assert "AA:BB:CC:DD:EE:01 was logged out." in kicked.get_data(as_text=True)
    assert code not in kicked.get_data(as_text=True)
    assert router_sim.rows("/ip/hotspot/active") == []


def test_owner_disables_resets_and_removes_a_technician(app):
    make_users(app)
    owner = Browser(app)
    owner.login()
    tech = Browser(app)
    assert tech.login(TECH_NAME, TECH_PASSWORD).status_code == 302
    with app.app_context(), db.connection_context():
        tech_id = AdminUser.get(AdminUser.username == TECH_NAME).id
        owner_id = AdminUser.get(AdminUser.username == OWNER_NAME).id

    # Disable: asked first, then the technician is out and cannot sign in.
    asked = owner.post(f"/admin/users/{tech_id}/disable")
    assert f"Disable {TECH_NAME}'s account?" in visible_text(asked.get_data(as_text=True))
    assert tech.get("/admin/router").status_code == 200
    owner.post(f"/admin/users/{tech_id}/disable", {"confirmed": "yes"})
    assert tech.get("/admin/router").status_code == 302  # signed out
    refused = Browser(app).login(TECH_NAME, TECH_PASSWORD)
    assert refused.status_code == 401
    assert "This account is disabled. Ask the owner." in refused.get_data(as_text=True)
    wrong = Browser(app).login(TECH_NAME, "not-the-password")
    assert "disabled" not in wrong.get_data(as_text=True)  # a guesser learns nothing
    assert "disabled" in visible_text(owner.text("/admin/users"))
    owner.post(f"/admin/users/{tech_id}/enable")
    assert Browser(app).login(TECH_NAME, TECH_PASSWORD).status_code == 302

    # A new password, shown once; the old one stops working.
    assert "Give otieno-fundi a new password?" in visible_text(
        owner.post(f"/admin/users/{tech_id}/password").get_data(as_text=True))
    shown = owner.post(f"/admin/users/{tech_id}/password", {"confirmed": "yes"})
    assert shown.headers["Cache-Control"] == "no-store"
    new = shown.get_data(as_text=True).split('id="password">')[1].split("<")[0]
    assert len(new) >= 10
    assert Browser(app).login(TECH_NAME, TECH_PASSWORD).status_code == 401
    assert Browser(app).login(TECH_NAME, new).status_code == 302

    # Owners are not managed from here.
    for action in ("disable", "remove", "password"):
        owner.post(f"/admin/users/{owner_id}/{action}", {"confirmed": "yes"})
    assert Browser(app).login(OWNER_NAME, OWNER_PASSWORD).status_code == 302
    assert "Only technicians' accounts can be changed here" in visible_text(
        owner.text("/admin/users"))

    # Remove: asked, then gone; the activity log keeps the name.
    owner.post(f"/admin/users/{tech_id}/remove")
    with app.app_context(), db.connection_context():
        assert AdminUser.select().where(AdminUser.username == TECH_NAME).exists()
    owner.post(f"/admin/users/{tech_id}/remove", {"confirmed": "yes"})
    with app.app_context(), db.connection_context():
        assert not AdminUser.select().where(AdminUser.username == TECH_NAME).exists()
    assert Browser(app).login(TECH_NAME, new).status_code == 401
    actions = [action for _actor, action, _address in audit_actions(app)]
    for expected in ("admin.disable", "admin.enable", "admin.password_reset", "admin.remove"):
        assert expected in actions
    # A technician cannot do any of it.
    tech2 = Browser(app)
    with app.app_context(), db.connection_context():
        from portal.venue.accounts import create_admin

        other = create_admin("fundi-2", "another-long-pw", AdminUser.TECHNICIAN).id
    tech2.login("fundi-2", "another-long-pw")
    assert tech2.post(f"/admin/users/{other}/password", {"confirmed": "yes"}).status_code == 403
