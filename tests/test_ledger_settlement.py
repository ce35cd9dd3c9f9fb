"""Settlement in the sales ledger: the grant is written with the payment, and a query
after the callback changes nothing. Real emulators over sockets throughout."""
from __future__ import annotations

import pytest
from helpers import LOST, PAYER, buy, later, wait_for

from portal.ledger import grants, settlement
from portal.models import Grant, OutboxEvent, Purchase, db

pytestmark = pytest.mark.site(live_http=True, daraja=True, packages=True)


def fresh(purchase: Purchase) -> Purchase:
    return Purchase.get_by_id(purchase.id)


def grant_of(purchase: Purchase) -> Grant | None:
    return Grant.get_or_none(Grant.purchase == purchase.id)


def grants_of(purchase: Purchase) -> list[Grant]:
    return list(Grant.select().where(Grant.purchase == purchase.id))


def paid_events() -> int:
    return OutboxEvent.select().where(OutboxEvent.kind == "purchase.paid").count()


def test_grant_is_written_with_the_payment_in_one_transaction(site):
    purchase = buy(site, LOST)
    with db.atomic() as txn:
        outcome = settlement.settle(purchase.checkout_request_id, success=True, result_code=0,
                               result_desc="ok", via="query", now=later(3))
        assert outcome == "settled" and grant_of(purchase) is not None
        txn.rollback()  # a crash before commit: neither the payment nor the grant remain
    assert fresh(purchase).status == Purchase.PENDING and grant_of(purchase) is None
    assert grants.due_for_provisioning(later(3)) == []


def test_query_after_callback_changes_nothing(site):
    purchase = buy(site, PAYER)
    assert wait_for(lambda: fresh(purchase).status == Purchase.PAID)
    receipt = fresh(purchase).receipt
    outcome = settlement.settle(purchase.checkout_request_id, success=True, result_code=0,
                           result_desc="processed", via="query", now=later(5))
    assert outcome == "duplicate"
    assert fresh(purchase).receipt == receipt
    assert len(grants_of(purchase)) == 1 and paid_events() == 1
