"""RouterOS API wire format: length-prefixed words grouped into sentences.

The router gateway's codec (for pipelined, tagged commands), written from the RouterOS
reference sheet (API wire protocol). The emulator in ``portal.sim`` has its own codec
on purpose: a bug shared by both sides would go unseen.
"""
from __future__ import annotations

import socket

ENCODING = "utf-8"


class WireError(Exception):
    """The byte stream is not a valid RouterOS API stream."""


def encode_length(length: int) -> bytes:
    """Encode a word length with RouterOS' 1 to 5 byte prefix."""
    if length < 0:
        raise ValueError("negative length")
    if length < 0x80:
        return length.to_bytes(1, "big")
    if length < 0x4000:
        return (length | 0x8000).to_bytes(2, "big")
    if length < 0x200000:
        return (length | 0xC00000).to_bytes(3, "big")
    if length < 0x10000000:
        return (length | 0xE0000000).to_bytes(4, "big")
    if length < 0x100000000:
        return b"\xf0" + length.to_bytes(4, "big")
    raise ValueError("word too long")


def decode_length(read) -> int:
    """Read a length prefix using ``read(n) -> bytes`` (exactly n bytes)."""
    first = read(1)[0]
    if first < 0x80:
        return first
    if first < 0xC0:
        return ((first & ~0x80) << 8) | read(1)[0]
    if first < 0xE0:
        rest = read(2)
        return ((first & ~0xC0) << 16) | int.from_bytes(rest, "big")
    if first < 0xF0:
        rest = read(3)
        return ((first & ~0xE0) << 24) | int.from_bytes(rest, "big")
    if first == 0xF0:
        return int.from_bytes(read(4), "big")
    raise WireError(f"reserved control byte 0x{first:02x}")


def encode_word(word: str | bytes) -> bytes:
    """One word: its length prefix then its bytes."""
    raw = word.encode(ENCODING) if isinstance(word, str) else word
    return encode_length(len(raw)) + raw


def encode_sentence(words) -> bytes:
    """A sentence: its words followed by the zero-length terminator."""
    return b"".join(encode_word(w) for w in words) + b"\x00"


class SocketReader:
    """Buffered exact reads from a socket; raises ConnectionError on EOF."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buffer = bytearray()

    def read(self, n: int) -> bytes:
        """Return exactly ``n`` bytes, blocking until they arrive."""
        while len(self.buffer) < n:
            chunk = self.sock.recv(max(65536, n - len(self.buffer)))
            if not chunk:
                raise ConnectionError("connection closed by peer")
            self.buffer.extend(chunk)
        data = bytes(self.buffer[:n])
        del self.buffer[:n]
        return data

    def read_word(self) -> str:
        """Read one word, decoded as text."""
        length = decode_length(self.read)
        return self.read(length).decode(ENCODING, errors="replace") if length else ""

    def read_sentence(self) -> list[str]:
        """Read words until the empty terminator; skip empty sentences."""
        while True:
            words = []
            while True:
                word = self.read_word()
                if word == "":
                    break
                words.append(word)
            if words:
                return words


def parse_attributes(words) -> dict[str, str]:
    """Turn ``=name=value`` and ``.tag=x`` words into a dict (values stay strings)."""
    attrs: dict[str, str] = {}
    for word in words:
        if word.startswith("="):
            name, _, value = word[1:].partition("=")
            attrs[name] = value
        elif word.startswith(".tag="):
            attrs[".tag"] = word[5:]
    return attrs
