"""The Daraja (M-Pesa) client: STK Push and Query, callbacks, ResultCodes, errors.

No models and no Flask: the caller passes the token store (see :mod:`.tokens`).
"""
from __future__ import annotations

from ..errors import (
    DuplicateRequest, InvalidAccessToken, InvalidAmount, InvalidPhone, MalformedCallback,
    MpesaBusy, MpesaConfigError, MpesaError, MpesaTimeout, MpesaUnreachable,
    SubscriberLocked,
)
from ..phone import normalise_phone
from .callbacks import CallbackResult, parse_callback
from .client import (
    PAYBILL, TILL, MpesaClient, PulledTransaction, QueryResult, StkPushResult,
)
from .results import (
    RESULT_MESSAGES, error_from_answer, failure_reason, owner_reason, result_message,
)
from .tokens import CachedToken, MemoryTokenStore, TokenStore

__all__ = [
    "MpesaClient", "PulledTransaction", "StkPushResult", "QueryResult", "CallbackResult",
    "parse_callback",
    "normalise_phone", "RESULT_MESSAGES", "result_message", "failure_reason",
    "owner_reason",
    "error_from_answer", "MpesaError", "InvalidPhone", "InvalidAmount", "MpesaBusy",
    "SubscriberLocked", "DuplicateRequest", "MpesaConfigError", "MpesaTimeout",
    "MpesaUnreachable", "MalformedCallback", "InvalidAccessToken", "PAYBILL", "TILL",
    "CachedToken", "MemoryTokenStore", "TokenStore",
]
