"""The RouterOS emulator's own API wire codec, written from the RouterOS reference sheet.

The emulator must not share the client's codec: a bug shared by both sides would make
them agree with each other and disagree with a router. This module is the router's side
of the protocol only:

- a word is a length prefix then that many bytes; the prefix is 1 to 5 bytes, big-endian:
  under 0x80 one byte; under 0x4000 two bytes with the top bits ``10``; under 0x200000
  three bytes with ``110``; under 0x10000000 four bytes with ``1110``; otherwise the byte
  0xF0 followed by the length in four bytes. A first byte of 0xF8 or more is a reserved
  control byte: a protocol error;
- a sentence is words ended by a zero-length word; an empty sentence is skipped;
- in a command sentence the first word is the command, ``=name=value`` words are its
  attributes (the value may hold ``=`` or be empty), ``.tag=x`` tags it and ``?...``
  words are print queries.
"""
from __future__ import annotations

import socket
from dataclasses import dataclass, field

TEXT_ENCODING = "utf-8"
LARGEST_WORD = 0xFFFFFFFF  # what the 0xF0 form's four bytes can count

# Smallest length that needs each longer prefix, and the marker bits of that prefix.
_TWO, _THREE, _FOUR, _FIVE = 0x80, 0x4000, 0x200000, 0x10000000
_FIVE_BYTE_MARK = 0xF0
_FIRST_RESERVED = 0xF8


class ProtocolError(Exception):
    """The peer sent bytes that are not a RouterOS API stream."""


class PeerClosed(ConnectionError):
    """The peer closed the connection (possibly in the middle of a word)."""


def length_prefix(length: int) -> bytes:
    """The 1 to 5 byte prefix that announces a word of ``length`` bytes."""
    if not 0 <= length <= LARGEST_WORD:
        raise ValueError(f"a word cannot be {length} bytes long")
    if length < _TWO:
        return bytes([length])
    if length < _THREE:
        return (0x8000 | length).to_bytes(2, "big")
    if length < _FOUR:
        return (0xC00000 | length).to_bytes(3, "big")
    if length < _FIVE:
        return (0xE0000000 | length).to_bytes(4, "big")
    return bytes([_FIVE_BYTE_MARK]) + length.to_bytes(4, "big")


def prefix_size(first: int) -> int:
    """How many bytes a prefix starting with ``first`` has; ProtocolError if none."""
    if first < 0x80:
        return 1
    if first < 0xC0:
        return 2
    if first < 0xE0:
        return 3
    if first < 0xF0:
        return 4
    if first == _FIVE_BYTE_MARK:
        return 5
    if first >= _FIRST_RESERVED:
        raise ProtocolError(f"reserved control byte 0x{first:02X} where a length was due")
    # 0xF1-0xF7: no length form uses them and the sheet gives them no meaning
    raise ProtocolError(f"byte 0x{first:02X} starts no length prefix")


def prefix_value(prefix: bytes) -> int:
    """The word length held by a complete prefix (as sized by ``prefix_size``)."""
    if len(prefix) == 5:
        return int.from_bytes(prefix[1:], "big")
    # Drop the marker bits: one per extra byte, plus the 0 that ends them.
    value_bits = 8 * len(prefix) - len(prefix)
    return int.from_bytes(prefix, "big") & ((1 << value_bits) - 1)


def word_bytes(word: str | bytes) -> bytes:
    """One word on the wire: its prefix, then its bytes."""
    raw = word if isinstance(word, bytes) else word.encode(TEXT_ENCODING)
    return length_prefix(len(raw)) + raw


def sentence_bytes(words) -> bytes:
    """One sentence on the wire: every word, then the zero-length word that ends it."""
    return b"".join(word_bytes(word) for word in words) + length_prefix(0)


def attribute_word(name: str, value: object) -> str:
    """``=name=value`` (the value as text; it may hold ``=`` or be empty)."""
    return f"={name}={value}"


def reply_words(reply: str, attributes: dict, tag: str | None = None) -> list[str]:
    """A reply sentence's words: ``!re``/``!done``/``!trap``..., its attributes, its tag."""
    words = [reply] + [attribute_word(name, value) for name, value in attributes.items()]
    if tag is not None:
        words.append(f".tag={tag}")
    return words


@dataclass
class CommandSentence:
    """A command as the router reads it: name, attributes, tag and print queries."""

    command: str
    attributes: dict[str, str] = field(default_factory=dict)
    tag: str | None = None
    queries: list[str] = field(default_factory=list)


def read_command(words: list[str]) -> CommandSentence:
    """Sort a sentence's words; a repeated attribute keeps its last value.

    Words of no known form (neither ``=``, ``.``, nor ``?``) are ignored, as are API
    attributes other than ``.tag``.
    """
    sentence = CommandSentence(words[0])
    for word in words[1:]:
        if word.startswith("="):
            name, _, value = word[1:].partition("=")
            sentence.attributes[name] = value
        elif word.startswith("?"):
            sentence.queries.append(word)
        elif word.startswith(".tag="):
            sentence.tag = word[len(".tag="):]
    return sentence


class SentenceReader:
    """Reads whole sentences from a connected socket, buffering what ``recv`` returns."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self._pending = bytearray()

    def take(self, count: int) -> bytes:
        """Exactly ``count`` bytes; blocks until they came; PeerClosed at end of stream."""
        while len(self._pending) < count:
            received = self.sock.recv(max(count - len(self._pending), 65536))
            if not received:
                raise PeerClosed("the peer closed the connection")
            self._pending += received
        taken = bytes(self._pending[:count])
        del self._pending[:count]
        return taken

    def next_word(self) -> str:
        """One word as text (undecodable bytes become U+FFFD); "" ends a sentence."""
        first = self.take(1)
        size = prefix_size(first[0])
        prefix = first + self.take(size - 1) if size > 1 else first
        length = prefix_value(prefix)
        return self.take(length).decode(TEXT_ENCODING, errors="replace") if length else ""

    def next_sentence(self) -> list[str]:
        """The words of the next non-empty sentence."""
        while True:
            words: list[str] = []
            while (word := self.next_word()) != "":
                words.append(word)
            if words:
                return words
