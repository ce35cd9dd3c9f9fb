"""Operator accounts: made from the command line with a generated password, signed in
with a lockout per email and address (no Flask here)."""
from __future__ import annotations

import re
from datetime import datetime, timedelta

from peewee import IntegrityError

from portal.crypto import check_password, hash_password, new_password

from .errors import HubError
from .models import Operator, OperatorLoginFailure, db

EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]{1,100}\.[^@\s]{1,20}")
#: Wrong passwords allowed per email and address before a pause.
MAX_FAILURES, LOCKOUT = 5, timedelta(minutes=15)
# Checked when the email is unknown, so a wrong email costs the same scrypt as a wrong password.
_DUMMY_HASH = hash_password("not-a-real-password-" + new_password())


def add_operator(email: str) -> tuple[Operator, str]:
    """A new operator with a generated password (returned once, only its hash is kept)."""
    email = email.strip().lower()
    if not EMAIL.fullmatch(email):
        raise HubError(400, "give an email address, e.g. ops@example.co.ke")
    password = new_password(16)
    try:
        with db.atomic():
            operator = Operator.create(email=email, password_hash=hash_password(password))
    except IntegrityError as exc:
        raise HubError(409, f"{email} is already an operator") from exc
    return operator, password


def authenticate(email: str, password: str, address: str, now: datetime) -> Operator:
    """The operator, or HubError 401 (wrong) / 429 (too many tries from this address)."""
    email = (email or "").strip().lower()[:120]
    since = now - LOCKOUT
    failures = (OperatorLoginFailure.select()
                .where((OperatorLoginFailure.email == email)
                       & (OperatorLoginFailure.address == address[:45])
                       & (OperatorLoginFailure.at > since)).count())
    if failures >= MAX_FAILURES:
        raise HubError(429, "Too many wrong passwords. Wait 15 minutes and try again.")
    operator = Operator.get_or_none(Operator.email == email)
    ok = check_password(operator.password_hash if operator else _DUMMY_HASH,
                        (password or "")[:200])
    if operator is None or not ok:
        OperatorLoginFailure.create(email=email, address=address[:45], at=now)
        OperatorLoginFailure.delete().where(OperatorLoginFailure.at < now - timedelta(days=1)).execute()
        raise HubError(401, "Wrong email or password.")
    Operator.update(last_login_at=now).where(Operator.id == operator.id).execute()
    return operator


def end_sessions(operator_id: int) -> None:
    """Every session of this operator is over (signing out)."""
    (Operator.update(session_version=Operator.session_version + 1)
     .where(Operator.id == operator_id).execute())
