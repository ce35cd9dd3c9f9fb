"""Admin accounts: the first owner, password checks."""
from __future__ import annotations

import click

from .crypto import hash_password, new_password
from .errors import ValidationError
from .models import AdminUser, AuditLog, db

MIN_PASSWORD = 10


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
    username = username.strip()
    if not username:
        raise ValidationError("empty username", field="username", en="Enter a username.",
                              sw="Andika jina la mtumiaji.")
    with db.atomic():
        user = AdminUser.create(username=username, password_hash=hash_password(password),
                                role=role)
        AuditLog.write(actor, "admin.create", f"{role} {username}", address)
    return user


def create_first_owner(username: str, password: str | None,
                       interactive: bool) -> tuple[str, str | None] | None:
    """Create the first owner unless one exists.

    Returns ``(username, generated_password_or_None)``, or None when an owner exists.
    Never prompts unless ``interactive`` (so scripts and containers never hang).
    """
    if owner_exists():
        return None
    generated = None
    if password is None:
        if interactive:
            password = click.prompt("Password for the owner account", hide_input=True,
                                    confirmation_prompt=True)
        else:
            password = generated = new_password()
    create_admin(username, password, AdminUser.OWNER, actor="kibanda init")
    return username, generated
