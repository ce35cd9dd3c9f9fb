"""Admin accounts: the first owner, sign-in with lockout, password changes, roles."""
from __future__ import annotations

from datetime import datetime, timedelta

from peewee import IntegrityError

from ..crypto import check_password, hash_password, new_password
from ..errors import NotFound, SetupClosed, SignInLocked, SignInRefused, ValidationError
from ..models import AdminUser, AuditLog, LoginFailure, db

MIN_PASSWORD = 10
MAX_FAILURES = 5
LOCKOUT = timedelta(minutes=15)
ROLES = (AdminUser.OWNER, AdminUser.TECHNICIAN)

# Checked against when the username is unknown, so a wrong name costs the same scrypt
# time as a wrong password and the response time does not reveal which names exist.
_DUMMY_HASH = hash_password("not-a-real-password-" + new_password())


def owner_exists() -> bool:
    """True once any owner account exists."""
    return AdminUser.select().where(AdminUser.role == AdminUser.OWNER).exists()


def validate_new_password(password: str) -> None:
    """Refuse short passwords with a clear message."""
    if len(password or "") < MIN_PASSWORD:
        raise ValidationError(f"password shorter than {MIN_PASSWORD} characters", field="password",
                              en=f"Use at least {MIN_PASSWORD} characters.",
                              sw=f"Tumia angalau herufi {MIN_PASSWORD}.")


def create_admin(username: str, password: str, role: str = AdminUser.OWNER,
                 actor: str = "system", address: str = "") -> AdminUser:
    """Create an admin account with an scrypt hash; audit-logged."""
    validate_new_password(password)
    username = (username or "").strip()
    if not username or len(username) > 60:
        raise ValidationError("empty username", field="username",
                              en="Enter a username (up to 60 characters).",
                              sw="Andika jina la mtumiaji (hadi herufi 60).")
    if role not in ROLES:
        raise ValidationError(f"unknown role {role!r}", field="role",
                              en="Choose owner or technician.", sw="Chagua mmiliki au fundi.")
    try:
        with db.atomic():
            user = AdminUser.create(username=username, password_hash=hash_password(password),
                                    role=role)
            AuditLog.write(actor, "admin.create", f"{role} {username}", address, role=role,
                           username=username)
    except IntegrityError as exc:
        raise ValidationError(f"username {username} taken", field="username",
                              en="That username is already taken.",
                              sw="Jina hilo la mtumiaji limeshachukuliwa.") from exc
    return user


def create_first_owner(username: str, password: str | None = None
                       ) -> tuple[str, str | None] | None:
    """Create the first owner unless one exists; a password is generated when none is given.

    Returns ``(username, generated_password_or_None)``, or None when an owner exists.
    """
    if owner_exists():
        return None
    generated = None
    if password is None:
        password = generated = new_password()
    create_admin(username, password, AdminUser.OWNER, actor="kibanda init")
    return username, generated


def setup_first_owner(username: str, password: str, confirm: str, address: str) -> AdminUser:
    """The one-time setup page: create the first owner, refused once any owner exists."""
    if password != confirm:
        raise ValidationError("passwords differ", field="confirm",
                              en="The two passwords are not the same.",
                              sw="Manenosiri mawili hayafanani.")
    # IMMEDIATE takes the write lock before the check, so two browsers racing on the
    # setup page cannot both see "no owner" and both create one.
    with db.atomic("IMMEDIATE"):
        if owner_exists():
            raise SetupClosed("setup already done")
        return create_admin(username, password, AdminUser.OWNER, actor=username.strip(),
                            address=address)


def locked_until(username: str, address: str, now: datetime) -> datetime | None:
    """When the lock on ``username`` from ``address`` ends, or None if not locked."""
    recent = list(LoginFailure.select(LoginFailure.at)
                  .where((LoginFailure.username == username) & (LoginFailure.address == address)
                         & (LoginFailure.at > now - LOCKOUT))
                  .order_by(LoginFailure.at.desc()).limit(MAX_FAILURES))
    if len(recent) < MAX_FAILURES:
        return None
    # Locked for 15 minutes from the fifth failure in the window.
    return recent[0].at + LOCKOUT


def authenticate(username: str, password: str, address: str, now: datetime) -> AdminUser:
    """Check a sign-in; raises SignInLocked or SignInRefused. Every outcome is audited."""
    username = (username or "").strip()[:60]
    until = locked_until(username, address, now)
    if until is not None:
        AuditLog.create(at=now, actor=username, action="admin.login_locked", address=address)
        raise SignInLocked(until)
    user = AdminUser.get_or_none(AdminUser.username == username)
    ok = check_password(user.password_hash if user else _DUMMY_HASH, password or "")
    if user and ok and user.disabled:
        # Said only to someone who knows the password: a guesser learns nothing.
        AuditLog.create(at=now, actor=username, action="admin.login_disabled",
                        address=address)
        raise SignInRefused("account disabled", en="This account is disabled. Ask the owner.",
                            sw="Akaunti hii imezimwa. Muulize mmiliki.")
    if not (user and ok):
        with db.atomic():
            LoginFailure.create(username=username, address=address, at=now)
            AuditLog.create(at=now, actor=username, action="admin.login_failed", address=address)
        until = locked_until(username, address, now)
        if until is not None:
            raise SignInLocked(until)
        raise SignInRefused("wrong username or password")
    with db.atomic():
        LoginFailure.delete().where((LoginFailure.username == username)
                                    & (LoginFailure.address == address)).execute()
        AdminUser.update(last_login_at=now).where(AdminUser.id == user.id).execute()
        AuditLog.create(at=now, actor=username, action="admin.login", address=address)
    return user


def change_password(user_id: int, current: str, new: str, confirm: str, address: str,
                    now: datetime) -> None:
    """Change a user's own password after checking the current one; audit-logged."""
    user = AdminUser.get_by_id(user_id)
    if not check_password(user.password_hash, current or ""):
        raise ValidationError("wrong current password", field="current",
                              en="Your current password is not right.",
                              sw="Nenosiri lako la sasa si sahihi.")
    if new != confirm:
        raise ValidationError("passwords differ", field="confirm",
                              en="The two new passwords are not the same.",
                              sw="Manenosiri mapya mawili hayafanani.")
    validate_new_password(new)
    with db.atomic():
        # A new session version ends every session signed in with the old password.
        AdminUser.update(password_hash=hash_password(new),
                         session_version=AdminUser.session_version + 1
                         ).where(AdminUser.id == user_id).execute()
        AuditLog.create(at=now, actor=user.username, action="admin.password_change",
                        address=address)


def end_sessions(user_id: int) -> None:
    """Sign the user out everywhere: every session signed in before now is over."""
    (AdminUser.update(session_version=AdminUser.session_version + 1)
     .where(AdminUser.id == user_id).execute())


# --- the owner looks after technicians' accounts ------------------------------------------

def _technician(user_id: int) -> AdminUser:
    """A technician's account, or ValidationError: owners are not managed from here."""
    user = AdminUser.get_or_none(AdminUser.id == user_id)
    if user is None:
        raise NotFound(f"admin user {user_id}")
    if user.role != AdminUser.TECHNICIAN:
        raise ValidationError(f"{user.username} is an owner", field="user",
                              en="Only technicians' accounts can be changed here. An owner "
                                 "changes their own password under Password; a forgotten "
                                 "owner password is reset on the appliance's console.",
                              sw="Hapa unaweza kubadilisha akaunti za mafundi tu. Mmiliki "
                                 "hubadilisha nenosiri lake chini ya Nenosiri; nenosiri la "
                                 "mmiliki lililosahaulika hubadilishwa kwenye kompyuta ya "
                                 "kifaa.")
    return user


def set_disabled(user_id: int, disabled: bool, actor: str, address: str,
                 now: datetime) -> AdminUser:
    """Disable (or enable again) a technician's account; disabling ends its sessions."""
    user = _technician(user_id)
    with db.atomic():
        AdminUser.update(disabled=disabled,
                         session_version=AdminUser.session_version + (1 if disabled else 0)
                         ).where(AdminUser.id == user.id).execute()
        AuditLog.create(at=now, actor=actor, action="admin.disable" if disabled else
                        "admin.enable", detail=user.username, address=address)
    return AdminUser.get_by_id(user.id)


def remove_account(user_id: int, actor: str, address: str, now: datetime) -> str:
    """Delete a technician's account (the activity log keeps its name); returns the name."""
    user = _technician(user_id)
    with db.atomic():
        AdminUser.delete().where(AdminUser.id == user.id).execute()
        AuditLog.create(at=now, actor=actor, action="admin.remove", detail=user.username,
                        address=address)
    return user.username


def reset_password(user_id: int, actor: str, address: str, now: datetime,
                   password: str | None = None, owner: bool = False) -> str:
    """Give an account a new password (generated unless given) and end its sessions;
    returns the password to hand over. The web resets technicians only; the console
    (``owner=True``) also resets an owner's."""
    user = AdminUser.get_or_none(AdminUser.id == user_id) if owner else _technician(user_id)
    if user is None:
        raise NotFound(f"admin user {user_id}")
    password = password if password is not None else new_password()
    validate_new_password(password)
    with db.atomic():
        AdminUser.update(password_hash=hash_password(password),
                         session_version=AdminUser.session_version + 1
                         ).where(AdminUser.id == user.id).execute()
        LoginFailure.delete().where(LoginFailure.username == user.username).execute()
        AuditLog.create(at=now, actor=actor, action="admin.password_reset",
                        detail=user.username, address=address)
    return password
