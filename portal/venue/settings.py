"""Site settings changed at run time (branding, secrets), kept in the Setting table.

Secret values are encrypted with the instance's Fernet key; configuration from the
instance file and ``KIBANDA_*`` stays the base, and a stored setting wins over it.
"""
from __future__ import annotations

from ..crypto import decrypt, encrypt
from ..models import Setting
from ..timeutil import utcnow


def get_setting(key: str, fernet_key: bytes | str | None = None, default=None):
    """A stored setting's value (decrypted when it is secret), or ``default``."""
    row = Setting.get_or_none(Setting.key == key)
    if row is None:
        return default
    if row.encrypted:
        if not fernet_key:
            raise ValueError(f"setting {key} is encrypted and no key was given")
        return decrypt(_key(fernet_key), row.value)
    return row.value


def set_setting(key: str, value: str, fernet_key: bytes | str | None = None,
                secret: bool = False) -> None:
    """Store a setting; ``secret=True`` encrypts it with the Fernet key."""
    stored = encrypt(_key(fernet_key), value) if secret else value
    (Setting.insert(key=key, value=stored, encrypted=secret, updated_at=utcnow())
     .on_conflict_replace().execute())


def _key(fernet_key) -> bytes:
    if not fernet_key:
        raise ValueError("no Fernet key: run `kibanda init` first")
    return fernet_key.encode() if isinstance(fernet_key, str) else fernet_key
