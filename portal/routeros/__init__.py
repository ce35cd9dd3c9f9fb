"""The router link: the gateway, its pipelined sessions and the API wire codec.

No models and no ledger: callers pass packages and grants' fields in, and get the
router's answers (as strings) or a :class:`portal.errors.RouterError` back.
"""
from __future__ import annotations

from .gateway import RouterGateway
from .pipeline import BulkResult, RouterEndpoint

__all__ = ["RouterGateway", "BulkResult", "RouterEndpoint"]
