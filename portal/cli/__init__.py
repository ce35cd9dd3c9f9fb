"""The ``kibanda`` console script (click only): every command a technician or owner types."""
from __future__ import annotations

from .main import main

__all__ = ["main"]
