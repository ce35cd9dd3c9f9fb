"""Grants: the right to be online, and putting it on the router.

A Grant is written in the same transaction as the sale that earns it. Putting it on the
router is a separate, retried step (``provision_grant``) so a router that is down at
payment time only delays access; the agent and the status page both retry it.
"""
from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from peewee import IntegrityError, fn

from ..errors import RouterError, RouterTrap, RouterUnreachable, ValidationError
from ..models import AuditLog, Grant, Package, Purchase, Voucher, db
from ..routeros.words import slow_profile_name
from ..timeutil import backoff_seconds, parse_duration
from . import devices, events, sms, windows

log = logging.getLogger(__name__)

ACCESS_CODE_LENGTH = 8
RETRY_BASE_SECONDS, RETRY_MAX_SECONDS = 5, 300


def new_access_code(length: int = ACCESS_CODE_LENGTH) -> str:
    """A random numeric code (easy to type on a phone), never starting with 0."""
    return str(secrets.choice("123456789")) + "".join(
        secrets.choice("0123456789") for _ in range(length - 1))


def create_grant(package, source: str, now: datetime, *, purchase=None, voucher=None,
                 username: str | None = None, created_by: str = "", note: str = "",
                 login_mac: str = "", login_ip: str = "",
                 expires_at: datetime | None = None, amount: int | None = None,
                 router_state: str = Grant.PENDING, sale_source: str | None = None,
                 sale: bool = True) -> Grant:
    """Create a Grant and its "sale" outbox event; call inside the sale's ``db.atomic()``.

    Every sale earns exactly one grant (a purchase, a voucher: unique columns), so the
    sale's one "sale" event is written here, whatever path the sale took: ``amount`` is
    what was paid (default: the purchase's amount, the package's price for a voucher,
    0 for a manual grant). The username doubles as the password and as the customer's
    access code, so the router's own login page accepts it when the appliance is down.
    ``router_state`` ON_ROUTER: the user is already there (a voucher used on the router).
    ``sale_source`` names the path for the hub when it differs from the grant's source
    ("c2b": paid from the M-Pesa menu, found by a confirmation or by Pull Transactions).
    ``sale`` False: no sale at all (a free trial), so no "sale" event. A purchase that
    tops up a grant (``purchase.topup_of``) extends that grant instead (:func:`top_up`).
    """
    if purchase is not None and purchase.topup_of:
        return top_up(Grant.get_by_id(purchase.topup_of), purchase, now,
                      amount=amount if amount is not None else purchase.amount,
                      sale_source=sale_source)
    # A windowed package sold ahead of its window (the owner's choice) starts at the opening.
    start = windows.grant_start(package, now)
    expires = expires_at or start + timedelta(seconds=package.validity_seconds)
    for _attempt in range(20):
        code = username or new_access_code()
        try:
            with db.atomic():
                grant = Grant.create(
                    username=code, password=code, package=package, source=source,
                    purchase=purchase, voucher=voucher, expires_at=expires,
                    created_at=now, created_by=created_by, note=note,
                    login_mac=login_mac or "", login_ip=login_ip or "",
                    next_router_attempt_at=now, router_state=router_state)
            break
        except IntegrityError:
            # Only a clash of random codes is worth another draw; anything else (a second
            # grant for the same purchase or voucher) is a real error for the caller.
            if username or not Grant.select().where(Grant.username == code).exists():
                raise
    else:
        raise RuntimeError("could not draw a free access code")
    if not sale:
        return grant
    if amount is None:
        amount = purchase.amount if purchase else package.price if voucher else 0
    events.record_sale(now, amount=amount, source=sale_source or source, package=package.name_en,
                       receipt=purchase.receipt if purchase else None,
                       # M-Pesa's id of the push, never the purchase's own reference:
                       # that opens the customer's page, which shows the access code.
                       reference=purchase.checkout_request_id if purchase else None,
                       phone=purchase.phone if purchase else None)
    if purchase is not None:
        # The SMS receipt (when SMS is on) is queued with the sale: the agent sends it.
        sms.queue_receipt(grant, purchase, now)
    return grant


def top_up(grant: Grant, purchase: Purchase, now: datetime, *, amount: int,
           sale_source: str | None = None) -> Grant:
    """Add a paid top-up to the grant it was bought for; call inside the sale's
    ``db.atomic()`` (settlement's compare-and-set makes it happen once per payment).

    A data package adds its data to the grant's cap and keeps the grant at least as long
    as the package's validity; a time package adds its validity to the time left. A grant
    that ran out meanwhile starts again from now: the money is never lost. The router is
    brought in line by provisioning (the grant goes back to pending), and the sale's one
    "sale" event says it is a top-up.
    """
    package = purchase.package
    validity = timedelta(seconds=package.validity_seconds)
    ended = grant.expires_at <= now or grant.router_state == Grant.REMOVED
    fields = {"router_state": Grant.PENDING, "next_router_attempt_at": now,
              "router_attempts": 0, "router_error": None}
    if package.data_cap_bytes:
        # Ended: the user starts again with fresh counters and this top-up's data only
        # (extra_bytes is what is added to the grant's own package's cap, so it may be < 0).
        own_cap = grant.package.data_cap_bytes or 0
        if ended:
            fields["extra_bytes"] = package.data_cap_bytes - own_cap
        elif grant.slowed_at is not None:
            # On slow speed past its cap: the router's counter has gone on counting the
            # slow bytes, so the new data is counted from what it counted last, and the
            # grant is back at full speed (its normal profile) until that is used too.
            counted = max(grant.bytes_used or 0, data_cap_of(grant) or 0)
            fields["extra_bytes"] = counted + package.data_cap_bytes - own_cap
            fields["slowed_at"] = None
        else:
            fields["extra_bytes"] = Grant.extra_bytes + package.data_cap_bytes
        fields["expires_at"] = now + validity if ended else max(grant.expires_at, now + validity)
    else:
        fields["expires_at"] = (now if ended else grant.expires_at) + validity
    if ended:
        fields.update(logged_in_at=None, first_login_at=None, bytes_used=None)
    Grant.update(**fields).where(Grant.id == grant.id).execute()
    events.record_sale(now, amount=amount, source=sale_source or Grant.MPESA,
                       package=package.name_en, receipt=purchase.receipt,
                       reference=purchase.checkout_request_id, phone=purchase.phone,
                       topup=True)
    extended = Grant.get_by_id(grant.id)
    sms.queue_receipt(extended, purchase, now)  # with the new time left, when SMS is on
    return extended


def data_cap_of(grant: Grant) -> int | None:
    """The grant's data cap in bytes: its package's plus what top-ups added (None: no cap)."""
    cap = grant.package.data_cap_bytes
    return cap + (grant.extra_bytes or 0) if cap else None


def grant_time_left(grant: Grant, now: datetime) -> int:
    """Whole seconds of access left at ``now`` (0 when expired)."""
    return max(0, int((grant.expires_at - now).total_seconds()))


@dataclass(frozen=True)
class GrantStatus:
    """Where a grant stands for the device in front of us: the one place that says so.

    ``status``: "paid" (waiting for the router or for the device's login), "online" or
    "expired". ``login_needed``: the user is on the router but this device is not logged
    in, so the page offers the router's own login form.
    """

    status: str
    time_left: int
    login_needed: bool


def grant_status(grant: Grant, now: datetime, *, login_failed: bool = False) -> GrantStatus:
    """Where ``grant`` stands at ``now``; ``login_failed``: the router just refused this device."""
    time_left = grant_time_left(grant, now)
    on_router = grant.router_state == Grant.ON_ROUTER
    if time_left == 0 or grant.router_state == Grant.REMOVED:
        status = "expired"
    elif grant.logged_in_at is not None and on_router and not login_failed:
        status = "online"
    else:
        status = "paid"
    login_needed = on_router and (
        login_failed or (grant.logged_in_at is None and not grant.login_ip))
    return GrantStatus(status, time_left, login_needed)


#: Every hotspot user Kibanda makes has a comment that starts with this: the agent's
#: reconcile step removes only such users (never one an owner or technician made).
MARK = "kibanda "


def made_by_kibanda(comment) -> bool:
    """True for a router user's comment that Kibanda wrote."""
    return str(comment or "").startswith(MARK)


def _comment(grant: Grant) -> str:
    if grant.purchase_id:
        return f"{MARK}mpesa purchase {grant.purchase_id}"
    if grant.voucher_id:
        return f"{MARK}voucher batch {grant.voucher.batch_id}"
    return f"{MARK}{grant.source} grant {grant.id}"


def grant_router_user(grant: Grant, now: datetime) -> dict:
    """The hotspot user of a grant (limit-uptime: the time left, a safety net).

    A fair-use grant past its cap (``slowed_at``) is on the package's slow profile with
    no byte limit, so a router that lost its users puts it back slow.
    """
    package = grant.package
    slowed = grant.slowed_at is not None
    cap = data_cap_of(grant) or 0
    return {"name": grant.username, "password": grant.password,
            "profile": slow_profile_name(package.profile_name) if slowed else package.profile_name,
            "limit_uptime": max(60, grant_time_left(grant, now)),
            "limit_bytes_total": 0 if slowed else cap, "comment": _comment(grant),
            # a windowed grant between its windows cannot log in, even on the router's page
            "disabled": not windows.is_open(package, now)}


def voucher_router_user(code: str, package: Package, batch_id: int,
                        now: datetime | None = None) -> dict:
    """The hotspot user of an unused voucher (its code is name and password); a windowed
    package's voucher is disabled while its window is closed at ``now``."""
    return {"name": code, "password": code, "profile": package.profile_name,
            # limit-uptime is only a safety net: the appliance removes the user at expiry.
            "limit_uptime": package.validity_seconds,
            "limit_bytes_total": package.data_cap_bytes or 0,
            "comment": f"{MARK}voucher batch {batch_id}",
            "disabled": now is not None and not windows.is_open(package, now)}


def put_on_router(grant: Grant, gateway, now: datetime) -> None:
    """Ensure the profile and the hotspot user exist; raises RouterError."""
    package = grant.package
    gateway.ensure_profile(package)
    if package.router_synced_at is None:
        (Package.update(router_synced_at=now, router_error=None)
         .where(Package.id == package.id).execute())
    user = grant_router_user(grant, now)
    again = grant.first_login_at is not None  # a top-up of a grant already used
    used = _router_uptime(gateway, grant.username) if again else 0
    gateway.ensure_user(user["name"], user["password"], user["profile"],
                        # the router counts uptime over all sessions: what was used plus
                        # the time left, or a top-up would be cut short
                        limit_uptime=user["limit_uptime"] + used,
                        limit_bytes_total=user["limit_bytes_total"], comment=user["comment"],
                        disabled=user["disabled"])
    if again:
        _relog_sessions(gateway, grant)
    (Grant.update(router_state=Grant.ON_ROUTER, router_error=None,
                  router_disabled=user["disabled"])
     .where((Grant.id == grant.id) & (Grant.router_state == Grant.PENDING)).execute())
    grant.router_state, grant.router_error = Grant.ON_ROUTER, None
    grant.router_disabled = user["disabled"]


def _router_uptime(gateway, name: str) -> int:
    """Seconds the router counts against limit-uptime: the user's ended sessions (its
    counter moves only at logout) plus its longest live one."""
    def seconds(row) -> int:
        try:
            return parse_duration(str((row or {}).get("uptime") or "0"))
        except ValueError:
            return 0
    live = [seconds(row) for row in gateway.active_sessions(proplist="user,uptime")
            if str(row.get("user", "")) == name]
    return seconds(gateway.user(name, proplist="uptime")) + max(live, default=0)


def _relog_sessions(gateway, grant: Grant) -> None:
    """Log a grant's live sessions in again: a session keeps the limits it logged in
    with, so a top-up's time and data apply only to a new one."""
    for row in gateway.active_sessions(proplist=".id,user,address,mac-address"):
        if str(row.get("user", "")) != grant.username:
            continue
        gateway.kick(row[".id"])
        try:
            gateway.login(grant.username, grant.password, row.get("address", ""),
                          row.get("mac-address", ""))
        except RouterTrap as exc:
            log.warning("grant %s: top-up re-login refused: %s", grant.id, exc)


def login_device(grant: Grant, gateway, ip: str, mac: str, now: datetime) -> None:
    """Log a device in with this grant (putting it on the router first); raises RouterError,
    or OutsideWindow for a windowed package between its windows."""
    windows.check_open(grant.package, now)
    if grant.router_disabled and grant.router_state == Grant.ON_ROUTER:
        # The window has opened and the agent has not yet enabled the user: do it now.
        gateway.update_user(grant.username, disabled=False)
        Grant.update(router_disabled=False).where(Grant.id == grant.id).execute()
        grant.router_disabled = False
    if grant.router_state == Grant.PENDING:
        put_on_router(grant, gateway, now)
    gateway.login(grant.username, grant.password, ip, mac)
    (Grant.update(logged_in_at=now, first_login_at=fn.COALESCE(Grant.first_login_at, now))
     .where(Grant.id == grant.id).execute())
    devices.record_login(grant, mac, ip, now)  # it holds one of the package's places
    grant.logged_in_at = now
    grant.first_login_at = grant.first_login_at or now


def provision_grant(grant_id: int, gateway, now: datetime) -> Grant:
    """Put a grant on the router and log in its device; on failure schedule a retry.

    Never raises RouterError: the outcome is in ``router_state``, ``logged_in_at`` and
    ``router_error`` of the returned grant. A router that refuses the device login (the
    device left, or the address is not on the hotspot) stops further login attempts: the
    customer's page then offers the router's own login form instead.
    """
    _provision(grant_id, gateway, now)
    return Grant.get_by_id(grant_id)


def provision_waiting(gateway, now: datetime) -> int:
    """Provision every grant whose retry is due; returns how many were tried.

    Stops at the first router that cannot be reached: the others would each wait out the
    same connection timeout, so they wait for the next cycle instead.
    """
    tried = 0
    for grant_id in due_for_provisioning(now):
        tried += 1
        if not _provision(grant_id, gateway, now):
            break
    return tried


def _provision(grant_id: int, gateway, now: datetime) -> bool:
    """The work of :func:`provision_grant`; False when the router could not be reached."""
    grant = Grant.get_by_id(grant_id)
    if grant.router_state == Grant.REMOVED or grant.expires_at <= now:
        return True
    try:
        if grant.router_state == Grant.PENDING:
            put_on_router(grant, gateway, now)
        if grant.login_ip and grant.logged_in_at is None:
            if not windows.is_open(grant.package, now):
                # Sold ahead of its window: the device is logged in when it opens.
                opening = windows.next_opening(grant.package, now)
                Grant.update(next_router_attempt_at=opening).where(Grant.id == grant.id).execute()
                return True
            try:
                login_device(grant, gateway, grant.login_ip, grant.login_mac, now)
            except RouterTrap as exc:
                Grant.update(login_ip="", router_error=f"device login: {exc.router_message or exc}"
                             ).where(Grant.id == grant.id).execute()
                log.warning("grant %s: router refused the device login: %s", grant.id, exc)
    except RouterError as exc:
        attempts = grant.router_attempts + 1
        delay = backoff_seconds(attempts - 1, RETRY_BASE_SECONDS, RETRY_MAX_SECONDS)
        (Grant.update(router_attempts=attempts, router_error=exc.operator_message,
                      next_router_attempt_at=now + timedelta(seconds=delay))
         .where(Grant.id == grant.id).execute())
        unreachable = isinstance(exc, RouterUnreachable)
        log.log(logging.INFO if unreachable else logging.WARNING,
                "grant %s waits for the router (retry in %ss): %s", grant.id, delay,
                exc.operator_message)
        return not unreachable
    return True


def due_for_provisioning(now: datetime) -> list[int]:
    """Ids of valid grants still waiting for the router (or for their device login)."""
    query = Grant.select(Grant.id).where(
        (Grant.expires_at > now)
        & (((Grant.router_state == Grant.PENDING)
            & ((Grant.next_router_attempt_at.is_null()) | (Grant.next_router_attempt_at <= now)))
           | ((Grant.router_state == Grant.ON_ROUTER) & (Grant.login_ip != "")
              & Grant.logged_in_at.is_null()
              & ((Grant.next_router_attempt_at.is_null())
                 | (Grant.next_router_attempt_at <= now)))))
    return [row.id for row in query]


def remove_expired(gateway, now: datetime) -> int:
    """Take expired grants off the router (kick their sessions first); returns how many.

    Expiry is the appliance's own absolute time, never a router date string.
    """
    removed = 0
    for grant in Grant.select().where((Grant.expires_at <= now)
                                      & (Grant.router_state != Grant.REMOVED)):
        if grant.router_state == Grant.ON_ROUTER:
            try:
                gateway.kick_user(grant.username)
                gateway.remove_user(grant.username)
            except RouterUnreachable as exc:
                # The others would wait out the same timeout: try them all next cycle.
                log.info("expired grants wait for the router: %s", exc.operator_message)
                break
            except RouterError as exc:
                log.warning("grant %s expired but the router refused its removal: %s",
                            grant.id, exc.operator_message)
                continue
        with db.atomic():
            (Grant.update(router_state=Grant.REMOVED)
             .where(Grant.id == grant.id).execute())
            if grant.voucher_id:
                (Voucher.update(state=Voucher.EXPIRED)
                 .where((Voucher.id == grant.voucher_id) & (Voucher.state != Voucher.VOID))
                 .execute())
            events.record_event(events.GRANT_EXPIRED, now, grant_uuid=f"grant-{grant.id}")
        removed += 1
    return removed


def grant_for(purchase: Purchase) -> Grant | None:
    """The Grant a paid purchase earned, or the one a paid top-up extended (None before
    it is paid)."""
    if purchase.topup_of:
        # The row in hand may predate its settlement: the database says whether it paid.
        paid = Purchase.select().where((Purchase.id == purchase.id)
                                       & (Purchase.status == Purchase.PAID)).exists()
        return Grant.get_or_none(Grant.id == purchase.topup_of) if paid else None
    return Grant.get_or_none(Grant.purchase == purchase.id)


def provision_if_due(grant: Grant | None, gateway, now: datetime) -> Grant | None:
    """Retry putting a waiting grant on the router when its retry time has come."""
    if grant is None or grant.id not in due_for_provisioning(now):
        return grant
    return provision_grant(grant.id, gateway, now)


def check_manual_grant(package_id, note: str) -> tuple[Package, str]:
    """The package and the cleaned note of a free access, or ValidationError (nothing is
    written: the owner's confirmation page shows these before anything is given)."""
    package = Package.get_or_none(Package.id == package_id) if str(package_id).isdigit() else None
    if package is None:
        raise ValidationError("no package", field="package", en="Choose a package.",
                              sw="Chagua kifurushi.")
    note = " ".join((note or "").split())[:200]
    if not note:
        raise ValidationError("no note", field="note",
                              en="Write why you give this access (for example: paid but not connected).",
                              sw="Andika sababu ya kutoa muda huu (mfano: alilipa lakini hakuunganishwa).")
    return package, note


def manual_grant(package_id, note: str, gateway, now: datetime, actor: str,
                 address: str = "", request_key: str | None = None) -> Grant:
    """Give a customer access for free (compensation); returns the grant with its code.

    The grant is recorded first and then put on the router; if the router is down it
    waits as pending and the agent puts it on later, so the code is valid either way.
    ``request_key`` is the confirmation form's one-time key: the same form sent twice (a
    double tap) returns the grant it already gave.
    """
    package, note = check_manual_grant(package_id, note)
    request_key = (request_key or "")[:32] or None
    try:
        with db.atomic():
            grant = create_grant(package, Grant.MANUAL, now, created_by=actor, note=note)
            if request_key is not None:
                Grant.update(request_key=request_key).where(Grant.id == grant.id).execute()
            AuditLog.write(actor, "grant.manual",
                           f"{grant.username}: {package.name_en} ({note})", address, at=now,
                           code=grant.username, name=package.name_en, name_sw=package.name_sw,
                           note=note)
    except IntegrityError:
        given = (Grant.get_or_none(Grant.request_key == request_key)
                 if request_key is not None else None)
        if given is None:
            raise
        return given
    return provision_grant(grant.id, gateway, now)
