"""Where the M-Pesa client keeps its OAuth token: a store passed in, never the models.

Daraja invalidates the previous token on every OAuth request, so every worker of a site
must share one token and only one of them may fetch a new one at a time. The client asks
its store to *claim* the refresh: exactly one claimant gets it, the others wait for the
token it stores. The appliance passes a store backed by its database (shared by every
process); :class:`MemoryTokenStore` shares a token between the threads of one process.
"""
from __future__ import annotations

import threading
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable, ContextManager, Protocol

from ..timeutil import utcnow


@dataclass(frozen=True)
class CachedToken:
    """A bearer token and the moment (naive UTC) from which it must be refreshed."""

    token: str
    refresh_at: datetime


#: Whether a cached token may be used as it is (the client's rule, given to the store).
Usable = Callable[[CachedToken | None], bool]


class TokenStore(Protocol):
    """The token cache the M-Pesa client needs (see the module docstring)."""

    def session(self) -> ContextManager:
        """Whatever the store needs open around one ``access_token`` call."""

    def read(self, name: str) -> CachedToken | None:
        """The cached token called ``name``, or None."""

    def claim(self, name: str, usable: Usable, lease_seconds: float) -> CachedToken | bool:
        """Atomically: a usable cached token; else True when this caller may refresh it
        (no live claim by another worker; the claim lapses after ``lease_seconds``);
        else False (another worker is fetching: wait for its token)."""

    def save(self, name: str, token: CachedToken) -> None:
        """Store a fresh token and give up the claim."""

    def release(self, name: str) -> None:
        """Give up the claim without a token (the fetch failed)."""


class MemoryTokenStore:
    """A token store for the threads of one process (tests, tools)."""

    def __init__(self, clock: Callable[[], datetime] | None = None):
        self._clock = clock or utcnow
        self._lock = threading.Lock()
        self._tokens: dict[str, CachedToken] = {}
        self._claims: dict[str, datetime] = {}

    def session(self) -> ContextManager:
        """Nothing to open."""
        return nullcontext()

    def read(self, name: str) -> CachedToken | None:
        """The cached token, or None."""
        with self._lock:
            return self._tokens.get(name)

    def claim(self, name: str, usable: Usable, lease_seconds: float) -> CachedToken | bool:
        """See :meth:`TokenStore.claim`."""
        with self._lock:
            cached = self._tokens.get(name)
            if usable(cached):
                return cached
            now = self._clock()
            claimed_until = self._claims.get(name)
            if claimed_until is not None and claimed_until > now:
                return False
            self._claims[name] = now + timedelta(seconds=lease_seconds)
            return True

    def save(self, name: str, token: CachedToken) -> None:
        """Store the token and drop the claim."""
        with self._lock:
            self._tokens[name] = token
            self._claims.pop(name, None)

    def release(self, name: str) -> None:
        """Drop the claim."""
        with self._lock:
            self._claims.pop(name, None)
