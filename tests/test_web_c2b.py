"""The C2B URLs over real sockets: the Daraja emulator registers them, a test phone pays
from its menu, the emulator asks validation and POSTs the confirmation, and the waiting
customer's device goes online. Secret and source-address rules as for the STK callback."""
from __future__ import annotations

import pytest
import requests
from helpers import IP, MAC, PAYER, SECRET, buy, wait_for

from portal.errors import MpesaConfigError
from portal.ledger import c2b
from portal.models import C2BPayment, CallbackRecord, Grant, GrantDevice, Purchase, db
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


# == the customer pages' blocks (landing, waiting and failure pages, success note) =========

RANDOM_MAC = "DA:A1:19:00:00:01"  # 0xDA: the locally administered bit is set
NEW_RANDOM_MAC = "3E:A1:19:00:00:02"
DEVICE = {"mac": "AA:BB:CC:DD:EE:01", "ip": IP, "link-login-only": "http://10.5.50.1/login",
      "link-orig": "http://example.com/"}


def page_text(response) -> str:
    return response.get_data(as_text=True)


def test_the_landing_page_offers_the_paybill_and_the_till(site, client):
    page = page_text(client.get("/", query_string=DEVICE))
    assert 'id="menu-paybill"' in page and site.daraja.shortcode in page
    assert "under Reconnect" in page
    swahili = page_text(client.get("/?lang=sw"))
    assert "Lipa kupitia menyu ya M-Pesa" in swahili and "Unganisha tena" in swahili
    site.app.config.update(MPESA_TYPE="till", MPESA_PARTYB="600100")
    till = page_text(client.get("/?lang=en"))
    assert 'id="menu-till"' in till and "600100" in till and "menu-account" not in till


def test_the_waiting_page_shows_the_account_and_goes_online_when_paid_from_the_menu(
        site, client):
    register(site)
    answer = client.post("/buy", data={"package": "1", "phone": PAYER, **DEVICE})
    page_url = answer.headers["Location"]
    page = page_text(client.get(page_url))
    purchase = Purchase.get(Purchase.phone == PAYER)
    assert f'id="menu-account"><strong>{purchase.account_code}<' in page
    assert "No prompt?" in page and "Keep this page open" in page
    # A stranger who guesses the page sees no account code to pay into.
    assert purchase.account_code not in page_text(
        site.app.test_client().get(page_url))
    site.daraja.pay_from_menu(PAYER, 10, purchase.account_code)
    state = client.get(page_url + ".json").get_json()
    assert state["status"] == "online" and state["receipt"]
    assert "menu-account" not in page_text(client.get(page_url))


def test_a_random_mac_phone_is_told_its_code_is_its_key_and_comes_back_with_a_new_mac(
        site, client):
    device = {**DEVICE, "mac": RANDOM_MAC}
    site.device_joins(IP, RANDOM_MAC)
    site.daraja.decision_delay = 0
    page_url = client.post("/buy", data={"package": "1", "phone": PAYER,
                                         **device}).headers["Location"]
    assert wait_for(lambda: Purchase.get(Purchase.phone == PAYER).status == "paid")
    grant = Grant.get()
    assert wait_for(lambda: site.online(grant.username, IP))
    page = page_text(client.get(page_url))
    assert 'id="private-address"' in page and "Your access code is your key" in page
    assert "anwani binafsi" in page_text(client.get(page_url + "?lang=sw"))
    # Next day the phone shows up with another private address; the old session is gone.
    site.router.device_leaves(RANDOM_MAC)
    site.device_joins("10.5.50.77", NEW_RANDOM_MAC)
    phone = site.app.test_client()
    back = phone.post("/reconnect", data={"code": grant.username, "mac": NEW_RANDOM_MAC,
                                          "ip": "10.5.50.77"})
    assert back.status_code == 200, page_text(back)
    assert site.online(grant.username, "10.5.50.77")
    places = [(d.mac, d.freed_by) for d in GrantDevice.select().order_by(GrantDevice.id)]
    assert places == [(RANDOM_MAC, "replaced: offline"), (NEW_RANDOM_MAC, "")]


def test_a_third_device_on_a_one_device_code_is_refused_until_the_owner_frees_one(site):
    from portal.ledger import devices
    from portal.timeutil import utcnow

    site.daraja.decision_delay = 0
    purchase = buy(site, PAYER)
    assert wait_for(lambda: Purchase.get_by_id(purchase.id).status == "paid")
    grant = Grant.get()
    assert wait_for(lambda: site.online(grant.username, IP))
    site.device_joins("10.5.50.78", "AA:BB:CC:DD:EE:78")
    phone = site.app.test_client()
    refused = phone.post("/reconnect", data={"code": grant.username,
                                             "mac": "AA:BB:CC:DD:EE:78", "ip": "10.5.50.78"})
    assert refused.status_code == 409
    assert "All the devices this package allows are online" in page_text(refused)
    devices.free(GrantDevice.get().id, actor="mama", gateway=site.gateway, now=utcnow())
    assert not site.online(grant.username, IP)
    again = phone.post("/reconnect", data={"code": grant.username,
                                           "mac": "AA:BB:CC:DD:EE:78", "ip": "10.5.50.78"})
    assert again.status_code == 200 and site.online(grant.username, "10.5.50.78")


def test_a_typed_receipt_is_checked_with_transaction_status_and_credited(make_site):
    site = make_site(live_http=True, daraja=True, packages=True,
                     MPESA_INITIATOR_NAME="kibanda-api",
                     MPESA_SECURITY_CREDENTIAL="c2VjdXJpdHktY3JlZGVudGlhbA==")
    paid = site.daraja.pay_from_menu("254711000001", 50, "WIFI")  # nothing registered
    phone = site.app.test_client()
    device = {"mac": "AA:BB:CC:DD:EE:01", "ip": IP}
    first = phone.post("/reconnect", data={"code": paid["receipt"], **device})
    assert first.status_code == 400
    assert "checking this M-Pesa code with M-Pesa" in page_text(first)
    asked = site.daraja.status_results[0]["Result"]
    assert asked["TransactionID"] == paid["receipt"] and asked["ResultCode"] == 0
    assert wait_for(lambda: C2BPayment.select().where(
        C2BPayment.trans_id == paid["receipt"], C2BPayment.status == "credited").exists())
    assert C2BPayment.get().via == "lookup"
    again = phone.post("/reconnect", data={"code": paid["receipt"], **device})
    assert again.status_code == 200 and site.online(None, IP)
    # A receipt M-Pesa does not know: the result says so and nothing changes.
    phone.post("/reconnect", data={"code": "QWE1234567", **device})
    assert wait_for(lambda: len(site.daraja.status_results) == 2)
    assert site.daraja.status_results[1]["Result"]["ResultCode"] == 1
    assert C2BPayment.select().count() == 1 and Grant.select().count() == 1
