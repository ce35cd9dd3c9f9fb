"""Voucher codes, batches, pushing to the router (cut off and resumed), voiding, the CLI."""
from __future__ import annotations

import re
import time

from click.testing import CliRunner
from test_admin_support import (  # noqa: F401 - fixtures
    Browser, make_package, make_users, router_sim, run_pushes, site, site_config, visible_text,
)

from portal.web import app_router
from portal.cli import main
from portal.config import write_config_values
from portal.models import AuditLog, Voucher, VoucherBatch, db
from portal.timeutil import utcnow
from portal.venue.vouchers import (ALNUM, batch_counts, create_batch, draw_code, generate_codes,
                             push_batch, void_batch)

USERS = "/ip/hotspot/user"


def batch_users(sim, batch_id: int) -> list[str]:
    comment = f"kibanda voucher batch {batch_id}"
    return [row["name"] for row in sim.rows(USERS) if row.get("comment") == comment]


def test_100k_numeric_codes_are_unique_and_typeable():
    start = time.perf_counter()
    codes = generate_codes(100_000, "numeric", 8)
    elapsed = time.perf_counter() - start
    assert len(codes) == len(set(codes)) == 100_000
    assert all(len(c) == 8 and c.isdigit() and c[0] != "0" for c in codes)
    assert elapsed < 5, f"generation took {elapsed:.1f}s"


def test_100k_alnum_codes_avoid_look_alikes():
    codes = generate_codes(100_000, "alnum", 8, prefix="KB")
    assert len(set(codes)) == 100_000
    body = "".join(c[2:] for c in codes)
    assert set(body) <= set(ALNUM)
    assert not set(body) & set("01OIL")
    # Every allowed character shows up: the draw covers the whole alphabet.
    assert set(body) == set(ALNUM)
    assert all(c.startswith("KB") and len(c) == 10 for c in codes)


def test_codes_stay_unique_across_batches_even_when_a_draw_clashes(site, monkeypatch):
    package = make_package(site)
    with site.app_context(), db.connection_context():
        first = create_batch(package, 300, utcnow(), "mama", length=6)
        taken = [v.code for v in first.vouchers]
        # Force the next batch's first draws to repeat codes of the first batch: the
        # unique index refuses them and the clashing rows are drawn again.
        import portal.venue.vouchers as vouchers_module

        real = vouchers_module.generate_codes
        monkeypatch.setattr(vouchers_module, "generate_codes",
                            lambda count, *a, **k: taken[:50] + real(count - 50, *a, **k))
        second = create_batch(package, 300, utcnow(), "mama", length=6)
        assert Voucher.select().count() == 600
        assert Voucher.select().where(Voucher.batch == second.id).count() == 300
        assert len({v.code for v in Voucher.select()}) == 600
        assert second.created_by == "mama"


def test_batch_options_are_checked():
    from portal.errors import ValidationError
    from portal.venue.vouchers import clean_batch_options

    for bad, message in [(dict(count=0), "Make from 1 to 5,000"),
                         (dict(count=5001), "Make from 1 to 5,000"),
                         (dict(count=5, length=5), "Code length must be 6 to 10"),
                         (dict(count=5, prefix="OIL"), "Prefix: up to 4"),
                         (dict(count=5, alphabet="emoji"), "Choose numbers only")]:
        try:
            clean_batch_options(**bad)
            raise AssertionError(f"accepted {bad}")
        except ValidationError as exc:
            assert message in exc.message_for("en")
    assert draw_code("numeric", 6).isdigit()


def test_2000_codes_pushed_cut_off_and_resumed_without_duplicates(site, router_sim):
    package = make_package(site)
    with site.app_context(), db.connection_context():
        batch = create_batch(package, 2000, utcnow(), "mama")
        gateway = app_router(site)
        # The link drops in the middle of the second chunk.
        router_sim.drop_after(800)
        counts = push_batch(batch.id, gateway, utcnow(), chunk=500)
        assert VoucherBatch.get_by_id(batch.id).push_state == "failed"
        assert 0 < counts.failed == counts.new < 500
        assert counts.on_router + counts.new == 2000
        assert len(batch_users(router_sim, batch.id)) >= counts.on_router
        # As if the appliance died between the router's answer and its own commit: the
        # router has these codes, the database still says new. Resuming must not add
        # them twice ("exists" counts as on the router).
        lost = [v.id for v in Voucher.select(Voucher.id).where(
            (Voucher.batch == batch.id) & (Voucher.state == Voucher.ON_ROUTER)).limit(100)]
        Voucher.update(state=Voucher.NEW).where(Voucher.id.in_(lost)).execute()

        counts = push_batch(batch.id, gateway, utcnow(), chunk=500)
        assert counts.on_router == 2000 and counts.new == 0 and counts.failed == 0
        assert VoucherBatch.get_by_id(batch.id).push_state == "done"
        codes = {v.code for v in Voucher.select().where(Voucher.batch == batch.id)}
    names = batch_users(router_sim, batch.id)
    assert len(names) == 2000 and set(names) == codes
    row = next(r for r in router_sim.rows(USERS) if r["name"] == names[0])
    assert row["password"] == row["name"] and row["profile"] == package.profile_name
    assert row["limit-uptime"] == "1h"


def test_admin_page_pushes_in_background_and_shows_progress(site, router_sim):
    make_users(site)
    package = make_package(site)
    owner = Browser(site)
    owner.login()
    router_sim.refuse_logins = True  # the router is down when the batch is made
    made = owner.post("/admin/vouchers", {"package": str(package.id), "count": "120",
                                          "alphabet": "alnum", "length": "7", "prefix": "MN"})
    assert made.status_code == 302
    batch_url = made.location
    run_pushes(site)
    page = owner.text(batch_url)
    assert 'id="count-failed" class="bad">120<' in page
    assert "Resume putting on the router" in page
    assert batch_users(router_sim, 1) == []

    router_sim.refuse_logins = False
    router_sim.latency_ms = 5
    owner.post(batch_url + "/push")
    during = owner.text(batch_url)
    run_pushes(site)
    if "refreshes by itself" in during:  # caught it mid-push: the page reloads itself
        assert '<meta http-equiv="refresh" content="2">' in during
    after = owner.text(batch_url)
    assert 'id="count-on-router">120<' in after and 'id="count-failed" class="">0<' in after
    assert "http-equiv" not in after
    names = batch_users(router_sim, 1)
    assert len(names) == 120 and all(re.fullmatch(r"MN[2-9A-HJKMNP-Z]{7}", n) for n in names)
    listing = visible_text(owner.text("/admin/vouchers"))
    assert "#1 1 hour" in listing and "mama-njeri" in listing


def test_void_removes_unused_codes_from_the_router(site, router_sim):
    make_users(site)
    package = make_package(site)
    with site.app_context(), db.connection_context():
        batch = create_batch(package, 30, utcnow(), "mama")
        push_batch(batch.id, app_router(site), utcnow())
        used = Voucher.select().where(Voucher.batch == batch.id).order_by(Voucher.id).first()
        Voucher.update(state=Voucher.USED, first_login_at=utcnow()).where(
            Voucher.id == used.id).execute()
    owner = Browser(site)
    owner.login()
    router_sim.refuse_logins = True
    down = owner.post(f"/admin/vouchers/{batch.id}/void", follow_redirects=True)
    assert "Void unused codes" in down.get_data(as_text=True)  # nothing voided
    assert len(batch_users(router_sim, batch.id)) == 30
    router_sim.refuse_logins = False
    done = owner.post(f"/admin/vouchers/{batch.id}/void", follow_redirects=True)
    assert "29 unused vouchers voided." in done.get_data(as_text=True)
    assert batch_users(router_sim, batch.id) == [used.code]
    with site.app_context(), db.connection_context():
        counts = batch_counts(VoucherBatch.get_by_id(batch.id))
        assert (counts.void, counts.used, counts.on_router) == (29, 1, 0)
        assert AuditLog.select().where(AuditLog.action == "vouchers.void").count() == 1
        assert void_batch(batch.id, app_router(site), utcnow()) == 0


def test_cli_creates_prints_and_resumes_a_batch(tmp_path, router_sim):
    instance = tmp_path / "site"
    runner = CliRunner()
    env = {"KIBANDA_INSTANCE": str(instance)}
    assert runner.invoke(main, ["init", "--password", "a-long-owner-pass"], env=env).exit_code == 0
    config = site_config(instance, router_sim.port)
    write_config_values(instance, {k: v for k, v in config.items()
                                   if k not in ("TESTING", "INSTANCE_PATH")})
    added = runner.invoke(main, ["packages", "add", "--name", "1 day", "--price", "50",
                                 "--validity", "1d"], env=env)
    assert added.exit_code == 0, added.output

    router_sim.refuse_logins = True
    sheet = tmp_path / "sheet.html"
    made = runner.invoke(main, ["vouchers", "create", "--package", "1 day", "--count", "40",
                                "--print", str(sheet), "--layout", "58mm"], env=env)
    assert made.exit_code == 3, made.output
    assert "made batch 1: 40 x 1 day (KES 50)" in made.output
    assert "kibanda vouchers push 1" in made.output
    assert sheet.read_text().count('class="card') == 40
    assert batch_users(router_sim, 1) == []

    router_sim.refuse_logins = False
    pushed = runner.invoke(main, ["vouchers", "push", "1"], env=env)
    assert pushed.exit_code == 0, pushed.output
    assert "batch 1: 40 codes, 40 on the router" in pushed.output
    assert len(batch_users(router_sim, 1)) == 40

    listed = runner.invoke(main, ["vouchers", "list"], env=env)
    assert re.search(r"1 .* 1 day .* 50 +40 +40 +0 +0 +done", listed.output), listed.output
    bad = runner.invoke(main, ["vouchers", "create", "--package", "nope", "--count", "4"],
                        env=env)
    assert bad.exit_code == 2 and "No package named nope." in bad.output
