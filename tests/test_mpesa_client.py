"""The M-Pesa client against the documented Daraja payloads, replayed with ``responses``."""
from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta

import pytest
import requests
import responses

from portal.clients import DatabaseTokenStore
from portal.errors import ConfigurationError, PaymentError, ValidationError
from portal.models import TokenCache, db
from portal.mpesa import (
    DuplicateRequest, InvalidAmount, InvalidPhone, MpesaBusy, MpesaClient, MpesaConfigError,
    MpesaTimeout, MpesaUnreachable, SubscriberLocked,
)

BASE = "https://sandbox.safaricom.co.ke"
OAUTH = BASE + "/oauth/v1/generate"
PUSH = BASE + "/mpesa/stkpush/v1/processrequest"
QUERY = BASE + "/mpesa/stkpushquery/v1/query"
PASSKEY = "bfb279f9aa9bdbcf158e97dd71a467cd2e0c893059b10f78e6b72ada1ed2c919"
CALLBACK = "https://portal.example/mpesa/callback/s3cret"
# 06:24:08 UTC is 09:24:08 in Nairobi: the documentation's sample Timestamp.
NOW = datetime(2021, 6, 28, 6, 24, 8)
PUSH_OK = {"MerchantRequestID": "2654-4b64-97ff-b827b542881d3130",
           "CheckoutRequestID": "ws_CO_1007202409152617172396192", "ResponseCode": "0",
           "ResponseDescription": "Success. Request accepted for processing",
           "CustomerMessage": "Success. Request accepted for processing"}


@pytest.fixture
def daraja():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add(responses.GET, OAUTH, json={"access_token": "c9SQxWWhmdVRlyh0zh8gZDTkubVF",
                                             "expires_in": "3599"})
        yield mock


def make_client(**kw) -> MpesaClient:
    values = dict(mpesa_type="paybill")
    values.update(kw)
    return MpesaClient(BASE, "key", "secret", "174379", PASSKEY,
                       token_store=DatabaseTokenStore(), **values)


@pytest.fixture
def client(database):
    with make_client() as mpesa:
        yield mpesa


def calls_to(mock, url):
    return [call for call in mock.calls if call.request.url.split("?")[0] == url]


# -- STK Push: the request body ----------------------------------------------------------

def test_paybill_push_sends_the_documented_body(client, daraja):
    daraja.add(responses.POST, PUSH, json=PUSH_OK)
    result = client.stk_push("0708 374 149", "10", "KIBANDA-CAFE-WIFI", "WiFi 1 hour package",
                             CALLBACK + " ", now=NOW)
    assert result.checkout_request_id == "ws_CO_1007202409152617172396192"
    assert result.merchant_request_id == "2654-4b64-97ff-b827b542881d3130"
    assert result.customer_message == "Success. Request accepted for processing"
    (call,) = calls_to(daraja, PUSH)
    assert call.request.headers["Authorization"] == "Bearer c9SQxWWhmdVRlyh0zh8gZDTkubVF"
    assert call.request.headers["Content-Type"] == "application/json"
    body = json.loads(call.request.body)
    assert body["Timestamp"] == "20210628092408"
    assert base64.b64decode(body["Password"]).decode() == "174379" + PASSKEY + "20210628092408"
    # The documentation's own sample Password for that timestamp.
    assert body["Password"] == base64.b64encode(
        b"174379bfb279f9aa9bdbcf158e97dd71a467cd2e0c893059b10f78e6b72ada1ed2c91920210628092408"
    ).decode()
    assert body["TransactionType"] == "CustomerPayBillOnline"
    assert body["BusinessShortCode"] == "174379" and body["PartyB"] == "174379"
    assert body["Amount"] == 10 and isinstance(body["Amount"], int)
    assert body["PartyA"] == body["PhoneNumber"] == "254708374149"
    assert body["CallBackURL"] == CALLBACK
    assert body["AccountReference"] == "KIBANDA-CAFE" and len(body["AccountReference"]) == 12
    assert body["TransactionDesc"] == "WiFi 1 hour p" and len(body["TransactionDesc"]) == 13


def test_timestamp_is_nairobi_time_for_an_aware_moment_in_any_zone(client, daraja):
    from zoneinfo import ZoneInfo
    daraja.add(responses.POST, PUSH, json=PUSH_OK)
    new_york = datetime(2021, 6, 28, 2, 24, 8, tzinfo=ZoneInfo("America/New_York"))
    client.stk_push("0708374149", 1, "ref", "desc", CALLBACK, now=new_york)
    body = json.loads(calls_to(daraja, PUSH)[0].request.body)
    assert body["Timestamp"] == "20210628092408"
    assert base64.b64decode(body["Password"]).decode().endswith(body["Timestamp"])
    # The cached token is compared with the same moment in UTC: still valid, no new fetch.
    assert client.access_token(new_york + timedelta(minutes=5)) == "c9SQxWWhmdVRlyh0zh8gZDTkubVF"
    assert len(calls_to(daraja, OAUTH)) == 1


def test_till_push_uses_store_number_and_till(database, daraja):
    daraja.add(responses.POST, PUSH, json=PUSH_OK)
    with make_client(mpesa_type="till", party_b="5123456") as till:
        till.stk_push("+254 110 123 456", 50, "ref", "desc", CALLBACK, now=NOW)
    body = json.loads(calls_to(daraja, PUSH)[0].request.body)
    assert body["TransactionType"] == "CustomerBuyGoodsOnline"
    assert body["BusinessShortCode"] == "174379" and body["PartyB"] == "5123456"
    assert body["PartyA"] == "254110123456"


def test_mpesa_type_spellings(database):
    with make_client(mpesa_type=" BuyGoods ", party_b="5123456") as till:
        assert till.mpesa_type == "till"
    with pytest.raises(MpesaConfigError):
        make_client(mpesa_type="bank")


def test_till_without_till_number_is_an_operator_error():
    with pytest.raises(MpesaConfigError) as caught:
        make_client(mpesa_type="till")
    assert "MPESA_PARTYB" in str(caught.value)
    assert "staff" in caught.value.message_for("en")


def test_from_settings_reads_every_mpesa_setting(database, daraja):
    from portal.config import DEFAULTS
    settings = dict(DEFAULTS, MPESA_BASE_URL=BASE + "/", MPESA_CONSUMER_KEY="key",
                    MPESA_CONSUMER_SECRET="secret", MPESA_PASSKEY=PASSKEY, MPESA_TYPE="Till",
                    MPESA_PARTYB="5123456", MPESA_READ_TIMEOUT=12.5, MPESA_MAX_AMOUNT=1000)
    with MpesaClient.from_settings(settings) as mpesa:
        assert mpesa.base_url == BASE and mpesa.mpesa_type == "till"
        assert mpesa.timeout == (5.0, 12.5) and mpesa.party_b == "5123456"
        with pytest.raises(InvalidAmount):
            mpesa.stk_push("0708374149", 1001, "ref", "desc", CALLBACK)
    assert len(daraja.calls) == 0


def test_unconfigured_client_refuses_before_any_request(database, daraja):
    from portal.config import DEFAULTS
    with MpesaClient.from_settings(DEFAULTS) as mpesa:
        assert any("MPESA_CONSUMER_KEY" in p for p in mpesa.problems())
        with pytest.raises(MpesaConfigError) as caught:
            mpesa.stk_push("0708374149", 10, "ref", "desc", CALLBACK)
    assert "not available" in caught.value.message_for("en")
    assert len(daraja.calls) == 0


@pytest.mark.parametrize("amount, sent", [(10, 10), ("25", 25), (10.0, 10), ("10.00", 10)])
def test_integral_amounts_are_sent_as_integers(client, daraja, amount, sent):
    daraja.add(responses.POST, PUSH, json=PUSH_OK)
    client.stk_push("0708374149", amount, "ref", "desc", CALLBACK)
    assert json.loads(calls_to(daraja, PUSH)[0].request.body)["Amount"] == sent


@pytest.mark.parametrize("amount", [10.5, "10.50", "ten", True, 0, -5, 250001, None, "nan"])
def test_bad_amounts_never_reach_daraja(client, daraja, amount):
    with pytest.raises(InvalidAmount) as caught:
        client.stk_push("0708374149", amount, "ref", "desc", CALLBACK)
    assert isinstance(caught.value, ValidationError) and caught.value.field == "amount"
    assert len(daraja.calls) == 0


def test_bad_phone_never_reaches_daraja(client, daraja):
    with pytest.raises(InvalidPhone):
        client.stk_push("0812 345 678", 10, "ref", "desc", CALLBACK)
    assert len(daraja.calls) == 0


@pytest.mark.parametrize("url", ["", "portal.example/cb", "ftp://x/cb", "https://x/c b",
                                 "ftp://portal/mpesa/callback/s3cret-token/ref"])
def test_bad_callback_url_is_an_operator_error(client, daraja, url):
    with pytest.raises(MpesaConfigError) as refused:
        client.stk_push("0708374149", 10, "ref", "desc", url)
    assert calls_to(daraja, PUSH) == []
    assert "s3cret" not in str(refused.value)  # the secret part never reaches a log


# -- Daraja's error answers ------------------------------------------------------------

def error(code, message):
    return {"requestId": "1c5b-4ba8-815c-ac45c57a3db01495926", "errorCode": code,
            "errorMessage": message}


APIPRODUCT = {"fault": {"faultstring": "Invalid API call as no apiproduct match found",
                        "detail": {"errorcode": "keymanagement.service."
                                                "InvalidAPICallAsNoApiProductMatchFound"}}}


@pytest.mark.parametrize("status, body, expected, retry_after", [
    (500, error("500.003.02", "System is busy"), MpesaBusy, 30),
    (500, error("500.003.02", "Spike Arrest Violation"), MpesaBusy, 30),
    (500, error("500.003.03", "Quota Violation"), MpesaBusy, 60),
    (500, error("500.003.1001", "Internal Server Error"), MpesaBusy, 30),
    (500, error("500.001.1001", "Unable to lock subscriber, a transaction is already in "
                                "process for the current subscriber"), SubscriberLocked, 60),
    (500, error("500.001.1001", "Merchant does not exist"), MpesaConfigError, None),
    (500, error("500.001.1001", "Wrong credentials"), MpesaConfigError, None),
    (400, error("400.002.02", "Bad Request - Invalid BusinessShortCode"), MpesaConfigError,
     None),
    (400, error("400.002.02", "Bad Request - Invalid Timestamp"), MpesaConfigError, None),
    (400, error("400.002.02", "Bad Request - Invalid CallBackURL"), MpesaConfigError, None),
    (400, error("400.002.02", "Bad Request - Invalid PhoneNumber"), InvalidPhone, None),
    (400, error("400.002.02", "Bad Request - Invalid Amount"), InvalidAmount, None),
    (400, error("400.008.01", "Invalid Authentication passed"), MpesaConfigError, None),
    (401, APIPRODUCT, MpesaConfigError, None),
    (404, error("404.001.01", "Resource not found"), MpesaConfigError, None),
    (405, error("405.001", "Method Not Allowed"), MpesaConfigError, None),
    (200, {"ResponseCode": "17", "ResponseDescription": "Rule limited."}, DuplicateRequest,
     120),
    (503, "<html>Service Unavailable</html>", MpesaTimeout, None),
])
def test_push_error_answers_become_domain_errors(client, daraja, status, body, expected,
                                                 retry_after):
    kwargs = {"json": body} if isinstance(body, dict) else {"body": body}
    daraja.add(responses.POST, PUSH, status=status, **kwargs)
    with pytest.raises(expected) as caught:
        client.stk_push("0708374149", 10, "ref", "desc", CALLBACK)
    exc = caught.value
    assert exc.message_for("en") and exc.message_for("sw")
    assert exc.message_for("en") != exc.message_for("sw")
    if retry_after is not None:
        assert exc.retry_after == retry_after
    if isinstance(exc, MpesaConfigError):
        # An operator problem: the customer is sent to the staff, never blamed.
        assert isinstance(exc, ConfigurationError) and isinstance(exc, PaymentError)
        assert "staff" in exc.message_for("en") and "wahudumu" in exc.message_for("sw")
        assert "number" not in exc.message_for("en").lower()
    assert len(calls_to(daraja, PUSH)) == 1  # never re-sent


@pytest.mark.parametrize("body", [
    error("400.008.01", "Invalid Authentication passed"),
    error("400.008.02", "Invalid grant type passed"),
])
def test_refused_consumer_credentials_are_an_operator_error(database, body):
    with responses.RequestsMock() as mock, make_client() as mpesa:
        mock.add(responses.GET, OAUTH, status=400, json=body)
        with pytest.raises(MpesaConfigError) as caught:
            mpesa.stk_push("0708374149", 10, "ref", "desc", CALLBACK)
    assert "consumer key" in str(caught.value)
    assert calls_to(mock, PUSH) == []


# -- the token cache ---------------------------------------------------------------------

@pytest.mark.parametrize("expires_in", [3599, "3599"])
def test_token_is_cached_in_the_database_and_refreshed_a_minute_early(database, expires_in):
    with responses.RequestsMock() as mock, make_client() as mpesa:
        mock.add(responses.GET, OAUTH, json={"access_token": "first", "expires_in": expires_in})
        mock.add(responses.GET, OAUTH, json={"access_token": "second", "expires_in": expires_in})
        assert mpesa.access_token(NOW) == "first"
        assert mpesa.access_token(NOW + timedelta(seconds=3538)) == "first"
        with make_client() as other:  # another worker with the same settings
            assert other.access_token(NOW + timedelta(seconds=3000)) == "first"
        assert len(mock.calls) == 1
        assert mpesa.access_token(NOW + timedelta(seconds=3540)) == "second"
        assert len(mock.calls) == 2
        request = mock.calls[0].request
        assert request.url.endswith("?grant_type=client_credentials")
        assert request.headers["Authorization"] == "Basic " + base64.b64encode(
            b"key:secret").decode()
    with db.connection_context():
        assert TokenCache.get().token == "second"


def test_invalid_token_is_refreshed_once_and_the_push_retried_once(client, daraja):
    daraja.add(responses.GET, OAUTH, json={"access_token": "fresh", "expires_in": 3599})
    daraja.add(responses.POST, PUSH, status=404, json=error("404.001.03", "Invalid Access Token"))
    daraja.add(responses.POST, PUSH, json=PUSH_OK)
    result = client.stk_push("0708374149", 10, "ref", "desc", CALLBACK, now=NOW)
    assert result.checkout_request_id == PUSH_OK["CheckoutRequestID"]
    pushes = calls_to(daraja, PUSH)
    assert [c.request.headers["Authorization"] for c in pushes] == [
        "Bearer c9SQxWWhmdVRlyh0zh8gZDTkubVF", "Bearer fresh"]
    assert len(calls_to(daraja, OAUTH)) == 2


def test_a_token_refused_twice_stops_after_one_retry(client, daraja):
    daraja.add(responses.POST, PUSH, status=404, json=error("404.001.03", "Invalid Access Token"))
    with pytest.raises(MpesaConfigError):
        client.stk_push("0708374149", 10, "ref", "desc", CALLBACK)
    assert len(calls_to(daraja, PUSH)) == 2 and len(calls_to(daraja, OAUTH)) == 2


# -- transport failures ------------------------------------------------------------------

def test_read_timeout_is_mpesa_timeout_and_is_not_resent(client, daraja):
    daraja.add(responses.POST, PUSH, body=requests.exceptions.ReadTimeout("read timed out"))
    with pytest.raises(MpesaTimeout) as caught:
        client.stk_push("0708374149", 10, "ref", "desc", CALLBACK)
    assert "do not re-send" in str(caught.value)
    assert len(calls_to(daraja, PUSH)) == 1


def test_connect_timeout_is_unreachable(client, daraja):
    daraja.add(responses.POST, PUSH, body=requests.exceptions.ConnectTimeout("connect"))
    with pytest.raises(MpesaUnreachable) as caught:
        client.stk_push("0708374149", 10, "ref", "desc", CALLBACK)
    assert caught.value.retry_after == 30


# -- STK Query --------------------------------------------------------------------------

def test_query_pending_while_being_processed(client, daraja):
    daraja.add(responses.POST, QUERY, status=500, json={
        "requestId": "ws_CO_13012021093521236557", "errorCode": "500.001.1001",
        "errorMessage": "The transaction is being processed"})
    result = client.stk_query("ws_CO_13012021093521236557", now=NOW)
    assert result.state == "pending" and result.result_code is None
    body = json.loads(calls_to(daraja, QUERY)[0].request.body)
    assert body == {"BusinessShortCode": "174379", "Password": body["Password"],
                    "Timestamp": "20210628092408",
                    "CheckoutRequestID": "ws_CO_13012021093521236557"}


@pytest.mark.parametrize("code, desc, state", [
    ("0", "The service request is processed successfully.", "success"),
    ("1032", "Request cancelled by user", "failed"),
    ("1", "The balance is insufficient for the transaction.", "failed"),
])
def test_query_result_codes_arrive_as_strings(client, daraja, code, desc, state):
    daraja.add(responses.POST, QUERY, json={
        "ResponseCode": "0",
        "ResponseDescription": "The service request has been accepted successfully",
        "MerchantRequestID": "22205-34066-1", "CheckoutRequestID": "ws_CO_13012021093521236557",
        "ResultCode": code, "ResultDesc": desc})
    result = client.stk_query("ws_CO_13012021093521236557")
    assert (result.state, result.result_code, result.result_desc) == (state, int(code), desc)


def test_query_busy_raises(client, daraja):
    daraja.add(responses.POST, QUERY, status=500, json=error("500.003.02", "System is busy"))
    with pytest.raises(MpesaBusy):
        client.stk_query("ws_CO_1")
