"""Voucher batches from the admin pages: pushes queued for the agent, progress, voiding."""
from __future__ import annotations

import re

from helpers import Browser, batch_users, make_package, make_users, run_pushes, visible_text

from portal.models import AuditLog, Voucher, VoucherBatch, db
from portal.timeutil import utcnow
from portal.venue.vouchers import batch_counts, create_batch, push_batch, void_batch
from portal.web import app_router


def test_admin_page_pushes_in_background_and_shows_progress(app, router_sim):
    make_users(app)
    package = make_package(app)
    owner = Browser(app)
    owner.login()
    router_sim.refuse_logins = True  # the router is down when the batch is made
    made = owner.post("/admin/vouchers", {"package": str(package.id), "count": "120",
                                          "alphabet": "alnum", "length": "7", "prefix": "MN"})
    assert made.status_code == 302
    batch_url = made.location
    run_pushes(app)
    page = owner.text(batch_url)
    assert 'id="count-failed" class="bad">120<' in page
    assert "Resume putting on the router" in page
    assert batch_users(router_sim, 1) == []

    router_sim.refuse_logins = False
    router_sim.latency_ms = 5
    owner.post(batch_url + "/push")
    during = owner.text(batch_url)
    run_pushes(app)
    if "refreshes by itself" in during:  # caught it mid-push: the page reloads itself
        assert '<meta http-equiv="refresh" content="2">' in during
    after = owner.text(batch_url)
    assert 'id="count-on-router">120<' in after and 'id="count-failed" class="">0<' in after
    assert "http-equiv" not in after
    names = batch_users(router_sim, 1)
    assert len(names) == 120 and all(re.fullmatch(r"MN[2-9A-HJKMNP-Z]{7}", n) for n in names)
    listing = visible_text(owner.text("/admin/vouchers"))
    assert "#1 1 hour" in listing and "mama-njeri" in listing


def test_void_removes_unused_codes_from_the_router(app, router_sim):
    make_users(app)
    package = make_package(app)
    with app.app_context(), db.connection_context():
        batch = create_batch(package, 30, utcnow(), "mama")
        push_batch(batch.id, app_router(app), utcnow())
        used = Voucher.select().where(Voucher.batch == batch.id).order_by(Voucher.id).first()
        Voucher.update(state=Voucher.USED, first_login_at=utcnow()).where(
            Voucher.id == used.id).execute()
    owner = Browser(app)
    owner.login()
    # One tap only asks, saying how many printed cards stop working.
    asked = visible_text(owner.post(f"/admin/vouchers/{batch.id}/void").get_data(as_text=True))
    assert f"Void 29 unused codes of batch #{batch.id}?" in asked
    assert "Yes, void 29 codes" in asked and "Cancel" in asked
    assert len(batch_users(router_sim, batch.id)) == 30
    router_sim.refuse_logins = True
    down = owner.post(f"/admin/vouchers/{batch.id}/void", {"confirmed": "yes"},
                      follow_redirects=True)
    assert "Void unused codes" in down.get_data(as_text=True)  # nothing voided
    assert len(batch_users(router_sim, batch.id)) == 30
    router_sim.refuse_logins = False
    done = owner.post(f"/admin/vouchers/{batch.id}/void", {"confirmed": "yes"},
                      follow_redirects=True)
    assert "29 unused vouchers voided." in done.get_data(as_text=True)
    assert batch_users(router_sim, batch.id) == [used.code]
    with app.app_context(), db.connection_context():
        counts = batch_counts(VoucherBatch.get_by_id(batch.id))
        assert (counts.void, counts.used, counts.on_router) == (29, 1, 0)
        assert AuditLog.select().where(AuditLog.action == "vouchers.void").count() == 1
        assert void_batch(batch.id, app_router(app), utcnow()) == 0
