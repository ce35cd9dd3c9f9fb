"""Password hashes."""
from __future__ import annotations

from portal.crypto import check_password, hash_password


def test_password_hashes_are_scrypt_and_salted():
    first, second = hash_password("same password"), hash_password("same password")
    assert first.startswith("scrypt$") and first != second
    assert check_password(first, "same password") and not check_password(first, "other")
