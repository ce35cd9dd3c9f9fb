"""Daraja's answers decoded: the customer text for every STK ResultCode, and error bodies.

Every exception raised here is defined in :mod:`portal.errors`; each carries an English
and a Swahili customer message (``message_for``) and an operator message (``str(exc)``).
"""
from __future__ import annotations

import json

from ..errors import (
    DuplicateRequest, InvalidAccessToken, InvalidAmount, InvalidPhone, KibandaError,
    MpesaBusy, MpesaConfigError, MpesaError, MpesaTimeout, SubscriberLocked,
)
from ..i18n import N_


# ResultCode -> (English, Swahili, reason key). The reason keys are a contract with the
# customer pages and the JSON status endpoint.
RESULT_MESSAGES: dict[int, tuple[str, str, str]] = {
    1: ("Your M-Pesa balance is not enough for this package. Top up and try again.",
        "Salio lako la M-Pesa halitoshi kwa kifurushi hiki. Ongeza salio ujaribu tena.",
        "insufficient_funds"),
    2: ("M-Pesa refused the amount: it is below the minimum.",
        "M-Pesa imekataa kiasi hiki: ni chini ya kiwango cha chini.", "limit"),
    3: ("M-Pesa refused the amount: it is above the maximum.",
        "M-Pesa imekataa kiasi hiki: ni juu ya kiwango cha juu.", "limit"),
    4: ("This payment would go over your M-Pesa daily limit.",
        "Malipo haya yangezidi kikomo chako cha M-Pesa cha siku.", "limit"),
    8: ("M-Pesa could not take this payment right now. Please ask the staff for help.",
        "M-Pesa haikuweza kupokea malipo haya kwa sasa. Tafadhali omba msaada kwa wahudumu.",
        "limit"),
    17: ("You asked to pay this same amount less than 2 minutes ago. Wait 2 minutes and "
         "try again.",
         "Uliomba kulipa kiasi hiki hiki chini ya dakika 2 zilizopita. Subiri dakika 2 "
         "ujaribu tena.", "limit"),
    26: ("M-Pesa is busy right now. Please try again in a minute.",
         "M-Pesa ina shughuli nyingi kwa sasa. Tafadhali jaribu tena baada ya dakika moja.",
         "busy"),
    1001: ("Another M-Pesa request is still open on this phone. Try again in a minute.",
           "Kuna ombi lingine la M-Pesa kwenye simu hii. Jaribu tena baada ya dakika moja.",
           "busy"),
    1019: ("The payment request expired before it was completed. Please try again.",
           "Ombi la malipo liliisha muda kabla ya kukamilika. Tafadhali jaribu tena.",
           "expired"),
    1025: ("M-Pesa could not send the payment prompt. Please try again in a minute.",
           "M-Pesa haikuweza kutuma ujumbe wa malipo. Tafadhali jaribu tena baada ya dakika moja.",
           "busy"),
    1032: ("You cancelled the M-Pesa request. No money was taken.",
           "Ulighairi ombi la M-Pesa. Hakuna pesa iliyotolewa.", "cancelled"),
    1037: ("We could not reach your phone. Make sure it is on and has network, then try again.",
           "Hatukuweza kufikia simu yako. Hakikisha imewashwa na ina mtandao, kisha ujaribu tena.",
           "unreachable"),
    2001: ("The M-Pesa PIN was wrong. No money was taken. Please try again.",
           "PIN ya M-Pesa haikuwa sahihi. Hakuna pesa iliyotolewa. Tafadhali jaribu tena.",
           "wrong_pin"),
    2028: ("This service cannot take M-Pesa payments right now. Please ask the staff for help.",
           "Huduma hii haiwezi kupokea malipo ya M-Pesa kwa sasa. Tafadhali omba msaada kwa "
           "wahudumu.", "operator"),
    8006: ("This service cannot take M-Pesa payments right now. Please ask the staff for help.",
           "Huduma hii haiwezi kupokea malipo ya M-Pesa kwa sasa. Tafadhali omba msaada kwa "
           "wahudumu.", "operator"),
    9999: ("M-Pesa could not send the payment prompt. Please try again in a minute.",
           "M-Pesa haikuweza kutuma ujumbe wa malipo. Tafadhali jaribu tena baada ya dakika moja.",
           "busy"),
}
_UNKNOWN = ("The M-Pesa payment did not go through. No access was given; please try again.",
            "Malipo ya M-Pesa hayakufanikiwa. Tafadhali jaribu tena.", "unknown")


def result_message(code: int | str | None, lang: str = "en") -> str:
    """The customer text for an STK ResultCode in ``lang`` ("en" or "sw")."""
    en, sw, _reason = RESULT_MESSAGES.get(_as_code(code), _UNKNOWN)
    return sw if lang == "sw" else en


def failure_reason(code: int | str | None) -> str:
    """A short key for a failed ResultCode: "cancelled", "wrong_pin", ... or "unknown"."""
    return RESULT_MESSAGES.get(_as_code(code), _UNKNOWN)[2]


# ResultCode -> what happened, in plain words for the owner (the catalogue translates them).
# Daraja's own ResultDesc ("DS timeout user cannot be reached") is kept for a details line.
OWNER_REASONS: dict[int, str] = {
    1: N_("The customer's M-Pesa balance was too low."),
    2: N_("M-Pesa refused the amount: below its minimum."),
    3: N_("M-Pesa refused the amount: above its maximum."),
    4: N_("The payment would have gone over the customer's M-Pesa daily limit."),
    8: N_("Your PayBill or Till is at its maximum balance: M-Pesa refused the payment."),
    17: N_("The same amount was asked from this phone less than 2 minutes before; M-Pesa "
           "refused the repeat."),
    26: N_("M-Pesa was busy and did not send the request."),
    1001: N_("Another M-Pesa request was open on the customer's phone."),
    1019: N_("The request ran out of time before the customer answered it."),
    1025: N_("M-Pesa could not send the request to the customer's phone."),
    1032: N_("The customer cancelled the request."),
    1037: N_("The customer's phone could not be reached (switched off or no network)."),
    2001: N_("The customer entered a wrong M-Pesa PIN."),
    2028: N_("M-Pesa refused the payment: the PayBill or Till settings do not match. "
             "Ask your technician to check them."),
    8006: N_("The customer's M-Pesa PIN is locked after too many wrong tries."),
    9999: N_("M-Pesa could not send the request to the customer's phone."),
}
_OWNER_UNKNOWN = N_("M-Pesa did not complete the payment.")
# Daraja's texts when a code is missing or unknown (lower case, as a part of ResultDesc).
_KNOWN_TEXTS = (("cannot be reached", 1037), ("initiator information is invalid", 2001),
                ("cancelled by user", 1032), ("insufficient", 1), ("rule limited", 17),
                ("unable to lock subscriber", 1001), ("expired", 1019),
                ("credential is locked", 8006), ("system is busy", 26))


def owner_reason(code: int | str | None, result_desc: str | None = "") -> str:
    """Why a payment did not go through, in plain English for the owner (a catalogue
    message id): by ResultCode, else by Daraja's known wording, else a general line."""
    number = _as_code(code)
    if number not in OWNER_REASONS:
        lowered = (result_desc or "").lower()
        number = next((known for text, known in _KNOWN_TEXTS if text in lowered), None)
    return OWNER_REASONS.get(number, _OWNER_UNKNOWN)


def _as_code(code: int | str | None) -> int | None:
    try:
        return int(code)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def error_from_answer(status: int, text: str, *, what: str) -> KibandaError:
    """Turn a Daraja error answer (HTTP status and body) into the matching exception."""
    try:
        answer = json.loads(text) if text else {}
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        snippet = (text or "")[:200]
        if status in (502, 503, 504):
            # A gateway page: the request may or may not have reached M-Pesa.
            return MpesaTimeout(f"{what}: gateway answered HTTP {status}: {snippet}",
                                error_code=str(status))
        return MpesaError(f"{what}: unexpected HTTP {status} answer: {snippet}",
                          error_code=str(status))
    code = str(answer.get("errorCode") or answer.get("resultCode") or "")
    message = str(answer.get("errorMessage") or answer.get("resultDesc") or "")
    fault = answer.get("fault")
    if isinstance(fault, dict):  # the API gateway's own refusals
        message = message or str(fault.get("faultstring") or "")
    lowered = message.lower()
    detail = f"{what}: HTTP {status} {code} {message}".strip()
    if code == "404.001.03" or "invalid access token" in lowered:
        return InvalidAccessToken(detail, error_code=code)
    if "apiproduct" in lowered:
        return MpesaConfigError(detail + " (enable M-Pesa Express on the Daraja app)",
                                error_code=code)
    if code.startswith("400.008.") or "invalid authentication" in lowered \
            or "invalid client" in lowered or "wrong credentials" in lowered \
            or "merchant does not exist" in lowered:
        return MpesaConfigError(detail, error_code=code)
    if "unable to lock subscriber" in lowered:
        return SubscriberLocked(detail, error_code=code)
    if "rule limited" in lowered:
        return DuplicateRequest(detail, error_code=code)
    if code in ("500.003.02", "500.003.03", "500.003.1001") or "spike arrest" in lowered \
            or "quota" in lowered or "system is busy" in lowered:
        retry = 60 if code == "500.003.03" else 30
        return MpesaBusy(detail, error_code=code, retry_after=retry)
    if code == "400.002.02":
        if "phonenumber" in lowered or "partya" in lowered:
            return InvalidPhone(detail)
        if "amount" in lowered:
            return InvalidAmount(detail)
        # Every other field is built from the site's settings: shortcode, passkey,
        # timestamp, callback URL, transaction type.
        return MpesaConfigError(detail, error_code=code)
    if code in ("404.001.01", "405.001") or status in (401, 403, 404, 405):
        return MpesaConfigError(detail + " (check MPESA_BASE_URL)", error_code=code)
    if status >= 500:
        return MpesaBusy(detail, error_code=code)
    return MpesaError(detail, error_code=code)
