"""The operator's pages (sign-in, every site, each site's sales and CSV)."""
from __future__ import annotations


def register(app) -> None:
    """Add the operator's pages to ``app``."""
