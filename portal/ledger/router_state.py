"""The router against the ledger: who logged in, how much data, which users are missing.

The agent reads the router's hotspot users, sessions and profiles in one pipelined
exchange (``RouterGateway.hotspot_snapshot``) and then:

- ``track``: a voucher seen logged in (a session now, or counters from an earlier one,
  e.g. typed on the router's own login page while the appliance was down) is used from
  then on: its clock starts and it becomes a grant (:func:`codes.start_voucher`); a grant
  seen logged in gets its first login; data-capped grants get the bytes they used;
- ``reconcile``: after a reboot (ids renumbered: nothing here keeps a ``.id``) or a factory
  reset (users and profiles gone), users and profiles that valid grants and pushed
  vouchers need are put back, and users Kibanda made (comment ``kibanda ...``, see
  ``grants.MARK``) that nothing valid covers are removed. Users anyone else made are never
  touched. Every write is read back. Work per call is bounded.
"""
from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from peewee import IntegrityError, fn

from ..models import Grant, Package, Setting, Voucher, VoucherBatch
from ..routeros.words import slow_profile_name
from ..timeutil import parse_duration
from . import codes, grants, windows

log = logging.getLogger(__name__)

#: Vouchers started, users added and users removed per call, at most: a router with
#: thousands of changes is worked off over several cycles.
BATCH = 200
#: Names per ``IN (...)`` query (SQLite's bound-variable limit is far above).
CHUNK = 500


def _seconds(value) -> int:
    try:
        return parse_duration(str(value or "0"))
    except ValueError:
        return 0


def _bytes(row: dict) -> int:
    total = 0
    for name in ("bytes-in", "bytes-out"):
        text = str(row.get(name) or "0")
        total += int(text) if text.isdigit() else 0
    return total


def _chunks(items: list, size: int = CHUNK):
    for start in range(0, len(items), size):
        yield items[start:start + size]


class RouterSeen:
    """One snapshot, indexed by user name (names always as str: "123456" is not an int)."""

    def __init__(self, snapshot):
        self.users = {str(row.get("name", "")): row for row in snapshot.users}
        self.sessions: dict[str, list[dict]] = defaultdict(list)
        for row in snapshot.active:
            self.sessions[str(row.get("user", ""))].append(row)
        self.profiles = {str(row.get("name", "")) for row in snapshot.profiles}
        self.active_count = len(snapshot.active)

    def logged_in(self) -> list[str]:
        """Users with a session now, or whose counters show an earlier one."""
        names = {n for n, row in self.users.items() if _seconds(row.get("uptime")) > 0}
        return sorted(names | {n for n in self.sessions if n in self.users})

    def online_for(self, name: str) -> int:
        """Seconds ``name`` has been online in all: past sessions plus the longest now."""
        past = _seconds(self.users.get(name, {}).get("uptime"))
        return past + max((_seconds(s.get("uptime")) for s in self.sessions.get(name, [])),
                          default=0)

    def bytes_used(self, name: str) -> int:
        """Bytes in + out: the user's counters (ended sessions) plus its live sessions."""
        return _bytes(self.users.get(name, {})) + sum(map(_bytes, self.sessions.get(name, [])))


@dataclass
class TrackReport:
    """What ``track`` found."""

    vouchers_started: int = 0
    grants_seen: int = 0
    usage_updated: int = 0
    active_sessions: int = 0

    @property
    def changes(self) -> int:
        """Rows changed."""
        return self.vouchers_started + self.grants_seen + self.usage_updated


def track(snapshot, now: datetime, limit: int = BATCH) -> TrackReport:
    """Start the clocks of vouchers seen logged in, note grants' first logins and data used."""
    seen = RouterSeen(snapshot)
    report = TrackReport(active_sessions=seen.active_count)
    names = seen.logged_in()
    for chunk in _chunks(names):
        if report.vouchers_started >= limit:
            break
        fresh = Voucher.select().where(Voucher.code.in_(chunk)
                                       & Voucher.state.in_((Voucher.NEW, Voucher.ON_ROUTER)))
        for voucher in fresh:
            if report.vouchers_started >= limit:
                break
            # The first login is at least as long ago as everything the router counted.
            first = now - timedelta(seconds=seen.online_for(voucher.code))
            try:
                started = codes.start_voucher(voucher, first, on_router=True)
            except IntegrityError:
                # Its code is already another grant's access code: a person must look; the
                # other vouchers must not wait for that.
                log.error("voucher %s was used on the router but its code is another grant's",
                          voucher.id)
                continue
            if started is not None:
                report.vouchers_started += 1
                log.info("voucher %s was used on the router (first login %s)", voucher.id, first)
        for grant in Grant.select(Grant.id, Grant.username).where(
                Grant.username.in_(chunk) & Grant.first_login_at.is_null()
                & (Grant.router_state == Grant.ON_ROUTER)):
            first = now - timedelta(seconds=seen.online_for(grant.username))
            report.grants_seen += (Grant.update(first_login_at=first,
                                                logged_in_at=fn.COALESCE(Grant.logged_in_at, first))
                                   .where((Grant.id == grant.id) & Grant.first_login_at.is_null())
                                   .execute())
    capped = (Grant.select(Grant.id, Grant.username, Grant.bytes_used).join(Package)
              .where(Package.data_cap_bytes.is_null(False) & (Grant.router_state == Grant.ON_ROUTER)
                     & (Grant.expires_at > now)))
    for grant in capped:
        if grant.username not in seen.users:
            continue
        used = seen.bytes_used(grant.username)
        # Counters restart after a reboot or a re-created user: never count backwards.
        if grant.bytes_used is None or used > grant.bytes_used:
            report.usage_updated += Grant.update(bytes_used=used).where(
                Grant.id == grant.id).execute()
    (Setting.insert(key=USAGE_READ_KEY, value=now.isoformat(), updated_at=now)
     .on_conflict_replace().execute())
    return report


#: The Setting that says when ``track`` last read the router's usage counters.
USAGE_READ_KEY = "router.usage_read_at"


def usage_read_at() -> datetime | None:
    """When the agent last read data used from the router (None: never)."""
    row = Setting.get_or_none(Setting.key == USAGE_READ_KEY)
    return row.updated_at if row else None


@dataclass
class ReconcileReport:
    """What ``reconcile`` changed on the router."""

    profiles_added: list[str] = field(default_factory=list)
    users_added: list[str] = field(default_factory=list)
    users_removed: list[str] = field(default_factory=list)
    #: Windowed grants' users whose disabled flag was put right (after a reset or by hand).
    users_fixed: list[str] = field(default_factory=list)
    fixed_to: dict[str, bool] = field(default_factory=dict)  # name -> disabled
    #: Writes the router refused, and writes it accepted but the read-back does not show.
    refused: list[str] = field(default_factory=list)
    unconfirmed: list[str] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        """What did not come out as wanted (empty when the router is as it should be)."""
        return self.refused + self.unconfirmed

    @property
    def changes(self) -> int:
        """Writes the router confirmed."""
        return (len(self.profiles_added) + len(self.users_added) + len(self.users_removed)
                + len(self.users_fixed))


def _covered(now: datetime) -> set[str]:
    """User names something valid stands behind: unexpired grants not yet removed, and
    vouchers made but not used or voided (a push in progress included)."""
    names = {name for (name,) in Grant.select(Grant.username).where(
        (Grant.expires_at > now) & (Grant.router_state != Grant.REMOVED)).tuples()}
    names |= {code for (code,) in Voucher.select(Voucher.code).join(VoucherBatch).where(
        Voucher.state.in_((Voucher.NEW, Voucher.ON_ROUTER)) & VoucherBatch.voided_at.is_null())
        .tuples()}
    return names


def _wanted(seen: RouterSeen, now: datetime, limit: int) -> list[tuple[Package, dict]]:
    """Users that should be on the router and are not: (package, user) pairs.

    Names are compared first (plain tuples: thousands of vouchers each check), whole rows
    are read only for the few that are missing.
    """
    grant_ids = [row_id for row_id, name in Grant.select(Grant.id, Grant.username).where(
        (Grant.router_state == Grant.ON_ROUTER) & (Grant.expires_at > now))
        .order_by(Grant.id).tuples() if name not in seen.users][:limit]
    voucher_ids = [row_id for row_id, code in Voucher.select(Voucher.id, Voucher.code)
                   .join(VoucherBatch).where((Voucher.state == Voucher.ON_ROUTER)
                                             & VoucherBatch.voided_at.is_null())
                   .order_by(Voucher.id).tuples()
                   if code not in seen.users][:limit - len(grant_ids)]
    wanted: list[tuple[Package, dict]] = []
    for chunk in _chunks(grant_ids):
        for grant in Grant.select(Grant, Package).join(Package).where(Grant.id.in_(chunk)):
            wanted.append((grant.package, grants.grant_router_user(grant, now)))
    for chunk in _chunks(voucher_ids):
        for voucher in Voucher.select(Voucher, Package).join(Package).where(Voucher.id.in_(chunk)):
            wanted.append((voucher.package, grants.voucher_router_user(
                voucher.code, voucher.package, voucher.batch_id, now)))
    return wanted


def reconcile(gateway, snapshot, now: datetime, limit: int = BATCH) -> ReconcileReport:
    """Put back what valid grants and pushed vouchers need; remove Kibanda's stale users.

    Raises RouterError when the router cannot be reached (the next cycle tries again).
    """
    seen = RouterSeen(snapshot)
    report = ReconcileReport()
    wanted = _wanted(seen, now, limit)
    covered = _covered(now)
    stale = [name for name, row in seen.users.items()
             if grants.made_by_kibanda(row.get("comment")) and name not in covered][:limit]
    packages = {package.id: package for package, _ in wanted}
    for package in packages.values():
        names = [package.profile_name]
        if package.fair_use_rate:
            names.append(slow_profile_name(package.profile_name))  # ensure_profile makes both
        missing = [name for name in names if name not in seen.profiles]
        if missing:
            gateway.ensure_profile(package)
            report.profiles_added.extend(missing)
    if wanted:
        for result in gateway.bulk_add_users([user for _, user in wanted]):
            if result.ok:
                report.users_added.append(result.name)
            else:
                report.refused.append(f"user {result.name} not put back: {result.message}")
    if stale:
        for name in stale:
            if seen.sessions.get(name):
                gateway.kick_user(name)
        for result in gateway.bulk_remove_users(stale):
            if result.ok:
                report.users_removed.append(result.name)
            else:
                report.refused.append(f"user {result.name} not removed: {result.message}")
    _fix_windows(gateway, seen, now, report)
    if report.changes:
        _read_back(gateway, report)
    return report


def _disabled(row: dict) -> bool:
    return str(row.get("disabled", "")).lower() in ("true", "yes")


def _fix_windows(gateway, seen: RouterSeen, now: datetime, report: ReconcileReport) -> None:
    """Windowed grants' users disabled between windows and enabled inside, as the clock
    says (a user put back, or changed by hand, must not open outside its window)."""
    query = (Grant.select(Grant, Package).join(Package)
             .where((Grant.router_state == Grant.ON_ROUTER) & (Grant.expires_at > now)
                    & ((Package.window_days != "") | Package.window_start.is_null(False))))
    for grant in query:
        row = seen.users.get(grant.username)
        closed = not windows.is_open(grant.package, now)
        if row is None or _disabled(row) == closed:
            continue
        gateway.update_user(grant.username, disabled=closed)
        if closed and seen.sessions.get(grant.username):
            gateway.kick_user(grant.username)
        Grant.update(router_disabled=closed).where(Grant.id == grant.id).execute()
        report.users_fixed.append(grant.username)
        report.fixed_to[grant.username] = closed


def _read_back(gateway, report: ReconcileReport) -> None:
    """Read the router again: every write must show; what does not is ``unconfirmed``."""
    after = RouterSeen(gateway.hotspot_snapshot())
    report.unconfirmed += [f"profile {n} missing" for n in report.profiles_added
                           if n not in after.profiles]
    report.unconfirmed += [f"user {n} missing" for n in report.users_added if n not in after.users]
    report.unconfirmed += [f"user {n} still there" for n in report.users_removed
                           if n in after.users]
    report.unconfirmed += [f"user {n} disabled flag not changed" for n in report.users_fixed
                           if n in after.users and _disabled(after.users[n]) != report.fixed_to[n]]
    if report.unconfirmed:
        log.error("reconcile: the router does not show %d write(s): %s",
                  len(report.unconfirmed), ", ".join(report.unconfirmed[:5]))

