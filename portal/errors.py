"""Domain exceptions. Each carries a message for the person in front of the screen.

``customer_message`` is a dict of language code to text (English and Swahili); the
``operator_message`` is for logs, the admin pages and technicians.
"""
from __future__ import annotations

from .timeutil import format_local


class KibandaError(Exception):
    """Base of every domain error."""

    #: HTTP status used when the error reaches a view.
    status = 400
    customer_en = "Something went wrong. Please try again."
    customer_sw = "Hitilafu imetokea. Tafadhali jaribu tena."

    def __init__(self, operator_message: str = "", *, en: str | None = None,
                 sw: str | None = None):
        super().__init__(operator_message or en or self.customer_en)
        self.operator_message = operator_message or en or self.customer_en
        self.customer_message = {"en": en or self.customer_en, "sw": sw or self.customer_sw}

    def message_for(self, lang: str) -> str:
        """The customer-facing text in ``lang`` (falls back to English)."""
        return self.customer_message.get(lang) or self.customer_message["en"]


class ValidationError(KibandaError):
    """Input that cannot be accepted (wrong phone number, bad price ...)."""

    def __init__(self, operator_message: str = "", *, field: str | None = None,
                 en: str | None = None, sw: str | None = None):
        super().__init__(operator_message, en=en, sw=sw)
        self.field = field


class NotFound(KibandaError):
    """The thing asked for does not exist."""

    status = 404
    customer_en = "Not found."
    customer_sw = "Haikupatikana."


class RateLimited(KibandaError):
    """Too many attempts; try again later."""

    status = 429
    customer_en = "Too many attempts. Please wait a few minutes and try again."
    customer_sw = "Majaribio mengi mno. Tafadhali subiri dakika chache ujaribu tena."


class ConfigurationError(KibandaError):
    """The site is not configured correctly: an operator problem, never the customer's."""

    status = 503
    customer_en = "This service is not available right now. Please ask the staff for help."
    customer_sw = "Huduma hii haipatikani kwa sasa. Tafadhali omba msaada kwa wahudumu."


class RouterError(KibandaError):
    """The router refused a command, or could not be reached."""

    status = 503
    customer_en = "We could not reach the WiFi router. Please try again in a moment."
    customer_sw = "Hatukuweza kufikia ruta ya WiFi. Tafadhali jaribu tena baada ya muda mfupi."


class RouterUnreachable(RouterError):
    """No connection to the router (refused, timed out, dropped)."""


class RouterLoginRefused(RouterError):
    """The router refused the API username or password."""


class RouterTrap(RouterError):
    """The router answered a command with ``!trap``."""

    def __init__(self, operator_message: str = "", *, router_message: str = "",
                 category: int | None = None, **kwargs):
        super().__init__(operator_message, **kwargs)
        self.router_message = router_message
        self.category = category


class UserExists(RouterTrap):
    """The router already has a hotspot user with this name for this server."""


class PaymentError(KibandaError):
    """M-Pesa refused or could not process a request."""

    status = 502
    customer_en = "M-Pesa could not process the request. Please try again."
    customer_sw = "M-Pesa haikuweza kushughulikia ombi. Tafadhali jaribu tena."


class StorageUnavailable(KibandaError):
    """The appliance could not write to its database (disk full, database locked)."""

    status = 503
    customer_en = ("The WiFi system is busy and could not save your request. Nothing was "
                   "charged. Please try again in a minute or ask the staff for help.")
    customer_sw = ("Mfumo wa WiFi una shughuli nyingi na haukuweza kuhifadhi ombi lako. "
                   "Hakuna pesa iliyotozwa. Tafadhali jaribu tena baada ya dakika moja au "
                   "omba msaada kwa wahudumu.")


# -- M-Pesa ----------------------------------------------------------------------------

class MpesaError(PaymentError):
    """Base of every M-Pesa failure; ``retry_after`` says how long to wait, if that helps."""

    retry_after: int | None = None

    def __init__(self, operator_message: str = "", *, retry_after: int | None = None,
                 error_code: str | None = None, **kwargs):
        super().__init__(operator_message, **kwargs)
        if retry_after is not None:
            self.retry_after = retry_after
        #: Daraja's ``errorCode`` (or ResultCode) when the error came from an answer.
        self.error_code = error_code


class InvalidPhone(ValidationError):
    """Not a Safaricom M-Pesa number; raised before any request is sent."""

    customer_en = "Please enter a Safaricom M-Pesa number, like 0712 345 678."
    customer_sw = "Tafadhali weka namba ya M-Pesa ya Safaricom, kama 0712 345 678."

    def __init__(self, operator_message: str = "", **kwargs):
        kwargs.setdefault("field", "phone")
        super().__init__(operator_message, **kwargs)


class InvalidAmount(ValidationError):
    """An amount M-Pesa cannot take: not whole KES, or outside the configured limits."""

    customer_en = "This amount cannot be paid with M-Pesa. Please ask the staff for help."
    customer_sw = "Kiasi hiki hakiwezi kulipwa kwa M-Pesa. Tafadhali omba msaada kwa wahudumu."

    def __init__(self, operator_message: str = "", **kwargs):
        kwargs.setdefault("field", "amount")
        super().__init__(operator_message, **kwargs)


class MalformedCallback(ValidationError):
    """A callback body that is not the documented STK callback shape."""

    customer_en = "The payment notice could not be read."
    customer_sw = "Taarifa ya malipo haikuweza kusomeka."

    def __init__(self, operator_message: str = "", **kwargs):
        kwargs.setdefault("field", "body")
        super().__init__(operator_message, **kwargs)


class MpesaBusy(MpesaError):
    """Daraja is overloaded: system busy, spike arrest or quota (500.003.02 / 500.003.03)."""

    status = 503
    retry_after = 30
    customer_en = "M-Pesa is busy right now. Please try again in a minute."
    customer_sw = "M-Pesa ina shughuli nyingi kwa sasa. Tafadhali jaribu tena baada ya dakika moja."


class SubscriberLocked(MpesaError):
    """Another STK request is still open on this phone ("unable to lock subscriber")."""

    status = 409
    retry_after = 60
    customer_en = ("Another M-Pesa request is still open on this phone. Finish or cancel it, "
                   "then try again in a minute.")
    customer_sw = ("Kuna ombi lingine la M-Pesa ambalo bado liko wazi kwenye simu hii. "
                   "Limalize au ulighairi, kisha ujaribu tena baada ya dakika moja.")


class DuplicateRequest(MpesaError):
    """The same amount was asked of the same phone less than 2 minutes ago (ResultCode 17)."""

    status = 409
    retry_after = 120
    customer_en = ("You asked to pay this same amount less than 2 minutes ago. Check your "
                   "phone for the M-Pesa prompt, or wait 2 minutes and try again.")
    customer_sw = ("Uliomba kulipa kiasi hiki hiki chini ya dakika 2 zilizopita. Angalia "
                   "simu yako kama kuna ujumbe wa M-Pesa, au subiri dakika 2 ujaribu tena.")


class MpesaConfigError(ConfigurationError, MpesaError):
    """The site's Daraja settings are wrong: an operator problem, never the customer's."""

    # ConfigurationError's customer text ("ask the staff") comes first in the MRO.


class MpesaTimeout(MpesaError):
    """No answer in time after the request was sent: it may have gone out. Never re-send.

    A timed-out push has no CheckoutRequestID: keep the attempt open and let its callback
    (matched by phone and amount, for review) or the customer's retry after 2 minutes
    settle it; a second push of the same amount within 2 minutes ends with ResultCode 17.
    """

    status = 504
    customer_en = ("M-Pesa is slow to answer. If a payment prompt appears on your phone, "
                   "enter your PIN; this page will update by itself.")
    customer_sw = ("M-Pesa inachelewa kujibu. Ujumbe wa malipo ukitokea kwenye simu yako, "
                   "weka PIN yako; ukurasa huu utajisasisha wenyewe.")


class MpesaUnreachable(MpesaError):
    """No connection to Daraja at all (DNS, refused, connect timeout): nothing was sent."""

    status = 503
    retry_after = 30
    customer_en = "We cannot reach M-Pesa right now. Please try again in a minute."
    customer_sw = "Hatuwezi kufikia M-Pesa kwa sasa. Tafadhali jaribu tena baada ya dakika moja."


class InvalidAccessToken(MpesaError):
    """Daraja refused the bearer token (404.001.03); the client refreshes once and retries."""


# -- access: codes, devices, sessions ----------------------------------------------------

class SessionLimitReached(RouterTrap):
    """The router refused a login: the user's shared-users are all online already."""


class DeviceLimitReached(KibandaError):
    """The package's devices are all online already."""

    status = 409
    customer_en = ("All the devices this package allows are online already. Log one out, "
                   "or buy another package for this device.")
    customer_sw = ("Vifaa vyote vinavyoruhusiwa na kifurushi hiki viko mtandaoni tayari. "
                   "Ondoa kimoja, au nunua kifurushi kingine kwa kifaa hiki.")


class DeviceLoginFailed(RouterError):
    """The router could not log this device in; ``grant`` is still good to use."""

    def __init__(self, operator_message: str = "", *, grant, **kwargs):
        super().__init__(operator_message, **kwargs)
        self.grant = grant


class AccessExpired(KibandaError):
    """The code was good, but its time is over."""

    status = 410
    customer_en = "This code has expired. Please buy a new package."
    customer_sw = "Muda wa msimbo huu umeisha. Tafadhali nunua kifurushi kipya."


# -- the owner's sign-in -----------------------------------------------------------------

class SignInRefused(KibandaError):
    """Wrong username or password."""

    status = 401
    customer_en = "Wrong username or password."
    customer_sw = "Jina la mtumiaji au nenosiri si sahihi."


class SignInLocked(KibandaError):
    """Too many failed sign-ins for this user from this address."""

    status = 429

    def __init__(self, until):
        when = format_local(until, "%H:%M")
        super().__init__(
            f"locked until {until.isoformat()} UTC",
            en=f"Too many failed sign-ins. Try again after {when} (Nairobi time).",
            sw=f"Majaribio mengi yameshindwa. Jaribu tena baada ya saa {when} (saa za Nairobi).")
        self.until = until


class SetupClosed(KibandaError):
    """The setup page only works while no owner exists."""

    status = 404
    customer_en = "Not found."
    customer_sw = "Haikupatikana."
