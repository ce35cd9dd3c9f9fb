"""Signed site -> hub requests: the Ed25519 site key and the request signature.

The wire contract (docs/operators.md): every request after enrollment carries
``X-Kibanda-Site``, ``X-Kibanda-Key`` (key id), ``X-Kibanda-Timestamp`` (unix seconds) and
``X-Kibanda-Signature``, the base64 Ed25519 signature of
``METHOD\\nPATH\\nTIMESTAMP\\nBODY``. Signing the method and the path (with its query) means
a signature made for one endpoint is worthless on another. Both the agent (signing) and the
hub (verifying) use this module, so the two sides cannot drift apart.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (Ed25519PrivateKey,
                                                               Ed25519PublicKey)

SITE_KEY_FILE = "site_key.pem"
HEADER_SITE, HEADER_KEY = "X-Kibanda-Site", "X-Kibanda-Key"
HEADER_TIMESTAMP, HEADER_SIGNATURE = "X-Kibanda-Timestamp", "X-Kibanda-Signature"
#: A request more than this many seconds from the hub's clock is refused.
TIMESTAMP_WINDOW = 300


def new_key() -> Ed25519PrivateKey:
    """A fresh site key."""
    return Ed25519PrivateKey.generate()


def save_key(key: Ed25519PrivateKey, path: Path) -> None:
    """Write the key as PKCS8 PEM, created with mode 0600 (never readable by others)."""
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    os.replace(tmp, path)


def load_key(path: Path) -> Ed25519PrivateKey:
    """Read a key written by :func:`save_key`."""
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} is not an Ed25519 key")
    return key


def load_or_create_key(path: Path) -> Ed25519PrivateKey:
    """The site key at ``path``, created (0600) when there is none."""
    if path.exists():
        return load_key(path)
    key = new_key()
    save_key(key, path)
    return key


def public_bytes(key: Ed25519PrivateKey) -> bytes:
    """The 32 raw bytes of the public half."""
    return key.public_key().public_bytes(serialization.Encoding.Raw,
                                         serialization.PublicFormat.Raw)


def public_key_b64(key: Ed25519PrivateKey) -> str:
    """The public key as sent at enrollment: standard padded base64 of the raw bytes."""
    return base64.b64encode(public_bytes(key)).decode("ascii")


def key_id(public_raw: bytes) -> str:
    """First 16 hex characters of sha256(raw public key)."""
    return hashlib.sha256(public_raw).hexdigest()[:16]


def decode_public_key(text: str) -> bytes:
    """Raw public key bytes from enrollment's base64; ValueError when it is not 32 bytes."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("public key is not base64") from exc
    if len(raw) != 32:
        raise ValueError("public key must be 32 bytes")
    return raw


def message(method: str, path: str, timestamp: str, body: bytes) -> bytes:
    """The bytes that are signed: ``METHOD\\nPATH\\nTIMESTAMP\\nBODY``."""
    return b"\n".join([method.upper().encode("ascii"), path.encode("utf-8"),
                       timestamp.encode("ascii"), body])


def sign_headers(key: Ed25519PrivateKey, site: str, method: str, path: str, body: bytes,
                 now: float) -> dict[str, str]:
    """The four headers for one request; ``now`` in unix seconds (a fresh one per attempt)."""
    timestamp = str(int(now))
    signature = key.sign(message(method, path, timestamp, body))
    return {
        HEADER_SITE: site,
        HEADER_KEY: key_id(public_bytes(key)),
        HEADER_TIMESTAMP: timestamp,
        HEADER_SIGNATURE: base64.b64encode(signature).decode("ascii"),
    }


def verify(public_raw: bytes, method: str, path: str, timestamp: str, body: bytes,
           signature_b64: str) -> bool:
    """True when the signature is the site key's over this exact request."""
    try:
        signature = base64.b64decode(signature_b64, validate=True)
        Ed25519PublicKey.from_public_bytes(public_raw).verify(
            signature, message(method, path, timestamp, body))
    except (binascii.Error, ValueError, InvalidSignature):
        return False
    return True


def timestamp_fresh(timestamp: str, now: float, window: int = TIMESTAMP_WINDOW) -> bool:
    """True when ``timestamp`` is decimal unix seconds within ``window`` of ``now``."""
    if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
        return False
    return abs(int(timestamp) - now) <= window
