"""Voucher codes and batches, called directly: unique typeable codes, batch options, and a
push to the router cut off and resumed."""
from __future__ import annotations

import time

from helpers import USERS, batch_users, make_package

from portal.models import Voucher, VoucherBatch, db
from portal.timeutil import utcnow
from portal.venue.vouchers import ALNUM, create_batch, draw_code, generate_codes, push_batch
from portal.web import app_router


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


def test_codes_stay_unique_across_batches_even_when_a_draw_clashes(app, monkeypatch):
    package = make_package(app)
    with app.app_context(), db.connection_context():
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


def test_2000_codes_pushed_cut_off_and_resumed_without_duplicates(app, router_sim):
    package = make_package(app)
    with app.app_context(), db.connection_context():
        batch = create_batch(package, 2000, utcnow(), "mama")
        gateway = app_router(app)
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
