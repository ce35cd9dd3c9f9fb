"""Secrets at rest: Fernet encryption for settings, scrypt for admin passwords."""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets

from cryptography.fernet import Fernet, InvalidToken

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1


def encrypt(key: bytes, plaintext: str) -> str:
    """Encrypt text with the instance's Fernet key."""
    return Fernet(key).encrypt(plaintext.encode("utf-8")).decode("ascii")


def decrypt(key: bytes, token: str) -> str:
    """Decrypt a value written by :func:`encrypt`; raises ValueError on a wrong key."""
    try:
        return Fernet(key).decrypt(token.encode("ascii")).decode("utf-8")
    except InvalidToken as exc:
        raise ValueError("cannot decrypt: wrong instance key or damaged value") from exc


def hash_password(password: str) -> str:
    """An scrypt hash with a random salt, as ``scrypt$n$r$p$salt$hash``."""
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=SCRYPT_N, r=SCRYPT_R,
                            p=SCRYPT_P, dklen=32)
    return "scrypt${}${}${}${}${}".format(
        SCRYPT_N, SCRYPT_R, SCRYPT_P,
        base64.b64encode(salt).decode(), base64.b64encode(digest).decode())


def check_password(stored: str, password: str) -> bool:
    """True when ``password`` matches the stored scrypt hash (constant-time compare)."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    candidate = hashlib.scrypt(password.encode("utf-8"), salt=base64.b64decode(salt),
                               n=int(n), r=int(r), p=int(p), dklen=32)
    return hmac.compare_digest(candidate, base64.b64decode(digest))


def new_password(length: int = 14) -> str:
    """A random password without look-alike characters, easy to read aloud."""
    alphabet = "abcdefghjkmnpqrstuvwxyzABCDEFGHJKMNPQRSTUVWXYZ23456789"
    return "".join(secrets.choice(alphabet) for _ in range(length))
