"""The Kibanda agent: the long-running worker beside the portal (``kibanda agent``)."""
from __future__ import annotations

from .worker import Agent

__all__ = ["Agent"]
