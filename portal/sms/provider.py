"""The provider interface: one message in, one of three outcomes out.

``Accepted``: the provider took the message (its id, cost in KES, parts).
``Refused``: a permanent refusal for this message (a blacklisted number, a sender id the
account does not own, a bad number, no credit): never sent again.
``SmsRetryable`` (raised): no answer, a timeout, a 5xx, a gateway error or a risk hold:
the same message may be sent again later.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol


@dataclass(frozen=True)
class Accepted:
    """The provider accepted the message for delivery."""

    message_id: str
    cost: Decimal
    parts: int
    status: str = "Success"


@dataclass(frozen=True)
class Refused:
    """The provider refused this message for good; ``reason`` is its word (UserInBlacklist)."""

    code: int
    reason: str


class SmsRetryable(Exception):
    """Sending failed in a way that may pass: try the same message again later.

    ``network``: the provider could not be reached or did not answer (the uplink may be
    down), as opposed to an answer saying "later". ``maybe_sent``: the request may have
    reached the provider and only its answer was lost, so sending again may deliver the
    message twice.
    """

    def __init__(self, message: str, *, network: bool = False, maybe_sent: bool = False):
        super().__init__(message)
        self.network = network
        self.maybe_sent = maybe_sent


class SmsProvider(Protocol):
    """What the outbox needs of a provider."""

    def send(self, to: str, message: str) -> Accepted | Refused:
        """Send one message to one number (+2547XXXXXXXX); raises :class:`SmsRetryable`."""
        ...
