"""The appliance's links, built from its settings: the router gateway and the M-Pesa client.

The M-Pesa client keeps its OAuth token in a store passed in; here that store is the
database, so every process of the site (gunicorn workers, the agent, the CLI) shares one
token and only one of them asks Daraja for a new one at a time.
"""
from __future__ import annotations

from contextlib import nullcontext
from datetime import timedelta
from typing import Any, ContextManager, Mapping

from .models import TokenCache, db
from .mpesa import MpesaClient
from .mpesa.tokens import CachedToken, Usable
from .routeros import RouterGateway
from .sms.africastalking import AfricasTalking
from .timeutil import utcnow

_CLAIM_SUFFIX = ":refreshing"


class DatabaseTokenStore:
    """Daraja tokens in the TokenCache table, shared by every process of the site."""

    def session(self) -> ContextManager:
        """The caller's open connection, or one for the length of the call."""
        return db.connection_context() if db.is_closed() else nullcontext()

    def read(self, name: str) -> CachedToken | None:
        """The cached token called ``name``, or None."""
        row = TokenCache.get_or_none(TokenCache.name == name)
        return CachedToken(row.token, row.expires_at) if row else None

    def claim(self, name: str, usable: Usable, lease_seconds: float) -> CachedToken | bool:
        """A usable token, else True once this caller holds the refresh claim, else False.

        BEGIN IMMEDIATE holds SQLite's write lock for this short look-and-claim only,
        never while Daraja answers: settling a payment must not wait behind a token fetch.
        """
        with db.atomic("IMMEDIATE"):
            cached = self.read(name)
            if usable(cached):
                return cached
            claim = TokenCache.get_or_none(TokenCache.name == name + _CLAIM_SUFFIX)
            # Real time, not the caller's ``now``: a claim left by a dead worker lapses.
            if claim is not None and claim.expires_at > utcnow():
                return False
            (TokenCache.insert(name=name + _CLAIM_SUFFIX, token="",
                               expires_at=utcnow() + timedelta(seconds=lease_seconds))
             .on_conflict_replace().execute())
            return True

    def save(self, name: str, token: CachedToken) -> None:
        """Store the fresh token and drop the claim, in one transaction."""
        with db.atomic():
            (TokenCache.insert(name=name, token=token.token, expires_at=token.refresh_at)
             .on_conflict_replace().execute())
            TokenCache.delete().where(TokenCache.name == name + _CLAIM_SUFFIX).execute()

    def release(self, name: str) -> None:
        """Drop the claim (the fetch failed)."""
        TokenCache.delete().where(TokenCache.name == name + _CLAIM_SUFFIX).execute()


def mpesa_client(config: Mapping[str, Any]) -> MpesaClient:
    """The site's M-Pesa client, its token shared through the database."""
    return MpesaClient.from_settings(config, token_store=DatabaseTokenStore())


def router_gateway(config: Mapping[str, Any]) -> RouterGateway:
    """The site's router gateway."""
    return RouterGateway.from_settings(config)


def sms_configured(config: Mapping[str, Any]) -> bool:
    """True when SMS is set up (a username and an API key); otherwise SMS is simply off."""
    return bool(str(config.get("SMS_USERNAME") or "").strip()
                and str(config.get("SMS_API_KEY") or "").strip())


def sms_provider(config: Mapping[str, Any]) -> AfricasTalking | None:
    """The site's SMS provider, or None when SMS is not set up."""
    if not sms_configured(config):
        return None
    return AfricasTalking(str(config["SMS_USERNAME"]).strip(), str(config["SMS_API_KEY"]).strip(),
                          sender_id=str(config.get("SMS_SENDER_ID") or "").strip(),
                          base=str(config.get("SMS_BASE_URL") or "").strip())
