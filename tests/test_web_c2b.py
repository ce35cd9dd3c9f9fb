"""The C2B URLs over real sockets: the Daraja emulator registers them, a test phone pays
from its menu, the emulator asks validation and POSTs the confirmation, and the waiting
customer's device goes online. Secret and source-address rules as for the STK callback."""
from __future__ import annotations

import pytest
import requests
from helpers import IP, MAC, PAYER, SECRET, buy, wait_for

from portal.errors import MpesaConfigError
from portal.ledger import c2b
from portal.models import C2BPayment, CallbackRecord, Grant, Purchase, db
from portal.timeutil import nairobi_timestamp

pytestmark = [pytest.mark.site(live_http=True, daraja=True, packages=True),
              pytest.mark.daraja(decision_delay=600)]


def register(site) -> None:
    confirmation, validation = c2b.c2b_urls(site.app.config)
    site.mpesa.register_c2b_urls(confirmation, validation)


def body(trans_id="RKL51ZDR4F", amount="10.00", account="WIFI") -> dict:
    return {"TransactionType": "Pay Bill", "TransID": trans_id,
            "TransTime": nairobi_timestamp(), "TransAmount": amount,
            "BusinessShortCode": "174379", "BillRefNumber": account, "MSISDN": "2547 ***** 149",
            "FirstName": "NICHOLAS"}


def test_a_paybill_payment_from_the_menu_logs_the_waiting_device_in(site):
    register(site)
    with db.connection_context():
        purchase = buy(site, PAYER)
    paid = site.daraja.pay_from_menu(PAYER, 10, purchase.account_code)
    assert (paid["validation"], paid["confirmation_status"]) == ("accepted", 200)
    with db.connection_context():
        settled = Purchase.get_by_id(purchase.id)
        assert (settled.status, settled.receipt) == ("paid", paid["receipt"])
        grant = Grant.get(Grant.purchase == purchase.id)
    assert site.online(grant.username, IP)
    assert site.sessions(IP, MAC)
    again = requests.post(f"{site.url}/mpesa/c2b/confirmation/{SECRET}",
                          json=body(trans_id=paid["receipt"]), timeout=10)
    assert again.json() == {"ResultCode": 0, "ResultDesc": "Success"}
    with db.connection_context():
        assert Grant.select().count() == 1
        assert C2BPayment.get().copies == 2


def test_validation_refuses_what_no_package_can_take(site):
    register(site)
    refused = site.daraja.pay_from_menu(PAYER, 5, "WIFI")
    assert (refused["validation"], refused["taken"]) == ("rejected", False)
    answer = requests.post(f"{site.url}/mpesa/c2b/validation/{SECRET}",
                           json=body(amount="10.50"), timeout=10)
    assert answer.json() == {"ResultCode": "C2B00011", "ResultDesc": "Rejected"}
    with db.connection_context():
        assert C2BPayment.select().count() == 0


def test_a_till_payment_matches_the_waiting_purchase(site):
    site.daraja.c2b.till_number = "600100"
    confirmation, validation = c2b.c2b_urls(site.app.config)
    site.daraja.c2b.register({"ShortCode": "600100", "ResponseType": "Completed",
                              "ConfirmationURL": confirmation, "ValidationURL": validation}, 2)
    with db.connection_context():
        purchase = buy(site, PAYER)
    site.daraja.pay_from_menu(PAYER, 10, till=True)
    with db.connection_context():
        assert wait_for(lambda: Purchase.get_by_id(purchase.id).status == "paid")


def test_wrong_secret_is_not_found_and_strange_sources_are_refused(site):
    assert requests.post(f"{site.url}/mpesa/c2b/confirmation/guess", json=body(),
                         timeout=10).status_code == 404
    site.app.config["CALLBACK_ALLOWED_IPS"] = "safaricom"
    refused = requests.post(f"{site.url}/mpesa/c2b/confirmation/{SECRET}", json=body(),
                            timeout=10)
    assert refused.status_code == 403
    with db.connection_context():
        assert C2BPayment.select().count() == 0
        assert CallbackRecord.get().outcome == "refused"


def test_a_malformed_confirmation_is_kept_and_refused(site):
    answer = requests.post(f"{site.url}/mpesa/c2b/confirmation/{SECRET}", data=b"{oops",
                           timeout=10)
    assert answer.status_code == 400
    with db.connection_context():
        assert CallbackRecord.get().body == "{oops"


def test_the_sandbox_refuses_registration_with_a_clear_error(site):
    site.daraja.c2b.sandbox = True
    with pytest.raises(Exception) as refused:
        register(site)
    assert "sandbox" in str(refused.value).lower()
    site.mpesa.base_url = "https://sandbox.safaricom.co.ke"
    with pytest.raises(MpesaConfigError, match="emulator"):
        register(site)
