"""Domain exceptions. Each carries a message for the person in front of the screen.

``customer_message`` is a dict of language code to text (English and Swahili); the
``operator_message`` is for logs, the admin pages and technicians.
"""
from __future__ import annotations


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
    customer_sw = "Hatukuweza kufikia kifaa cha WiFi. Tafadhali jaribu tena baada ya muda mfupi."


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
