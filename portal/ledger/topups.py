"""Top-ups: more data or more time added to a grant the customer already holds.

A top-up is an ordinary M-Pesa purchase (same push, same settlement, one credit per
receipt) that records the grant it adds to (``Purchase.topup_of``); settlement then
extends that grant (``grants.top_up``) instead of creating one, so the access code stays
the same. Which packages fit: the same kind as the grant's own package (data for a data
grant, time for a time grant) and the same time window, so what is added works the way
the customer already knows.

The grant must be proven by what the browser holds (the session that was shown it, or
the access code typed and checked like every code): the web layer does that before
calling here.
"""
from __future__ import annotations

from datetime import datetime

from ..errors import ValidationError
from ..models import Grant, Package
from . import grants


def _window(package: Package) -> tuple:
    return (package.window_days or "", package.window_start, package.window_end)


def fits(grant: Grant, package: Package) -> bool:
    """True when ``package`` may top up ``grant``."""
    same_kind = bool(package.data_cap_bytes) == bool(grant.package.data_cap_bytes)
    return package.active and same_kind and _window(package) == _window(grant.package)


def topup_packages(grant: Grant) -> list[Package]:
    """The packages on sale that may top up ``grant``, in display order."""
    return [package for package in Package.on_sale() if fits(grant, package)]


def can_top_up(grant: Grant | None, now: datetime) -> bool:
    """True when ``grant`` is still valid and some package on sale may top it up."""
    if grant is None or grant.source == Grant.TRIAL or grant.router_state == Grant.REMOVED:
        return False
    return grants.grant_time_left(grant, now) > 0 and bool(topup_packages(grant))


def check_topup(grant: Grant, package: Package, now: datetime) -> None:
    """Raise ValidationError unless ``package`` may top up ``grant`` at ``now``."""
    if grant.source == Grant.TRIAL or grant.router_state == Grant.REMOVED \
            or grants.grant_time_left(grant, now) == 0:
        raise ValidationError(f"grant {grant.id} cannot be topped up", field="package",
                              en="This access has ended. Please buy a new package.",
                              sw="Muda wa huduma hii umeisha. Tafadhali nunua kifurushi kipya.")
    if not fits(grant, package):
        raise ValidationError(f"package {package.id} does not fit grant {grant.id}",
                              field="package", en="Please choose one of the packages shown.",
                              sw="Tafadhali chagua mojawapo ya vifurushi vilivyoonyeshwa.")
