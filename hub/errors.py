"""The hub's one exception: an HTTP status and the words the site or operator reads."""
from __future__ import annotations


class HubError(Exception):
    """A refused request; the API answers ``{"error": message}`` with ``status``."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message
