"""The RouterOS emulator's own wire codec, alone and against the client's codec."""
import io
import socket
import threading

import pytest

from portal.routeros import wire as apiwire
from portal.sim.routeros_wire import (
    LARGEST_WORD,
    PeerClosed,
    ProtocolError,
    SentenceReader,
    length_prefix,
    prefix_size,
    prefix_value,
    read_command,
    reply_words,
    sentence_bytes,
    word_bytes,
)

# (length, prefix bytes) on both sides of every change of prefix size.
BOUNDARIES = [
    (0, b"\x00"),
    (0x7F, b"\x7f"),
    (0x80, b"\x80\x80"),
    (0x3FFF, b"\xbf\xff"),
    (0x4000, b"\xc0\x40\x00"),
    (0x1FFFFF, b"\xdf\xff\xff"),
    (0x200000, b"\xe0\x20\x00\x00"),
    (0xFFFFFFF, b"\xef\xff\xff\xff"),
    (0x10000000, b"\xf0\x10\x00\x00\x00"),
    (LARGEST_WORD, b"\xf0\xff\xff\xff\xff"),
]


@pytest.fixture
def pair():
    left, right = socket.socketpair()
    left.settimeout(10)
    right.settimeout(10)
    yield left, right
    left.close()
    right.close()


def decode_prefix(data: bytes) -> tuple[int, int]:
    """(length, prefix size) of the prefix at the start of ``data``."""
    size = prefix_size(data[0])
    return prefix_value(data[:size]), size


@pytest.mark.parametrize("length, prefix", BOUNDARIES)
def test_length_prefix_at_every_boundary(length, prefix):
    assert length_prefix(length) == prefix
    assert decode_prefix(prefix + b"word bytes") == (length, len(prefix))


def test_the_reference_example_and_out_of_range_lengths():
    assert length_prefix(256) == b"\x81\x00"
    for bad in (-1, LARGEST_WORD + 1):
        with pytest.raises(ValueError):
            length_prefix(bad)


@pytest.mark.parametrize("first", [0xF8, 0xF9, 0xFC, 0xFF])
def test_reserved_control_bytes_are_a_protocol_error(first, pair):
    with pytest.raises(ProtocolError, match="reserved control byte"):
        prefix_size(first)
    left, right = pair
    left.sendall(bytes([first]) + b"\x00\x00\x00\x00")
    with pytest.raises(ProtocolError):
        SentenceReader(right).next_sentence()


def test_bytes_f1_to_f7_start_no_length():
    for first in range(0xF1, 0xF8):
        with pytest.raises(ProtocolError):
            prefix_size(first)


@pytest.mark.parametrize("length", [0x7F, 0x80, 0x3FFF, 0x4000, 0x1FFFFF, 0x200000])
def test_words_round_trip_over_a_socket(length, pair):
    left, right = pair
    word = "a" * length
    sender = threading.Thread(target=left.sendall, args=(sentence_bytes(["/x", word]),))
    sender.start()
    assert SentenceReader(right).next_sentence() == ["/x", word]
    sender.join()


def test_words_and_sentences_on_the_wire():
    assert word_bytes("/login") == b"\x06/login"
    assert word_bytes(b"") == b"\x00"
    assert sentence_bytes(["!done"]) == b"\x05!done\x00"
    assert word_bytes("ñ") == b"\x02\xc3\xb1"  # the length counts bytes, not characters


def test_empty_sentences_are_skipped_and_words_split_across_reads(pair):
    left, right = pair
    data = b"\x00\x00" + sentence_bytes(["/ip/hotspot/user/print", "?name=A"])
    for byte in data:  # one byte per send: the reader must join the pieces
        left.sendall(bytes([byte]))
    assert SentenceReader(right).next_sentence() == ["/ip/hotspot/user/print", "?name=A"]


def test_end_of_stream_mid_word_is_peer_closed(pair):
    left, right = pair
    left.sendall(b"\x06/lo")
    left.shutdown(socket.SHUT_WR)
    with pytest.raises(PeerClosed):
        SentenceReader(right).next_sentence()
    assert issubclass(PeerClosed, ConnectionError)


def test_attributes_keep_equals_signs_empty_values_tag_and_queries():
    sentence = read_command([
        "/ip/hotspot/user/add", "=name=V7K2QX", "=comment=a=b==c", "=password=",
        "=.id=*1A", ".tag=7", "?=server=hs1", "?-comment", "?#|", "stray",
    ])
    assert sentence.command == "/ip/hotspot/user/add"
    assert sentence.attributes == {"name": "V7K2QX", "comment": "a=b==c", "password": "",
                                   ".id": "*1A"}
    assert sentence.tag == "7"
    assert sentence.queries == ["?=server=hs1", "?-comment", "?#|"]


def test_a_command_without_tag_has_none_and_the_last_repeat_wins():
    sentence = read_command(["/system/resource/print", "=a=1", "=a=2"])
    assert sentence.tag is None and sentence.attributes == {"a": "2"} and sentence.queries == []


def test_reply_words_echo_the_tag_only_when_given():
    assert reply_words("!done", {"ret": "*1A"}, "3") == ["!done", "=ret=*1A", ".tag=3"]
    assert reply_words("!trap", {"message": "x=y", "category": "1"}) == [
        "!trap", "=message=x=y", "=category=1"]


# --- interop: the client's codec and the emulator's codec agree ------------------------

INTEROP_WORDS = ["/ip/hotspot/user/add", "=name=V7K2QX", "=comment=a=b", "=password=",
                 "=note=" + "x" * 0x80, "=big=" + "y" * 0x4000, "=swahili=Karibu ñ", ".tag=42"]


def test_client_encodes_and_the_emulator_decodes(pair):
    left, right = pair
    sender = threading.Thread(target=left.sendall, args=(
        apiwire.encode_sentence(INTEROP_WORDS) + apiwire.encode_sentence(["/quit"]),))
    sender.start()
    reader = SentenceReader(right)
    assert reader.next_sentence() == INTEROP_WORDS
    assert reader.next_sentence() == ["/quit"]
    sender.join()
    sentence = read_command(INTEROP_WORDS)
    assert sentence.attributes == {"name": "V7K2QX", "comment": "a=b", "password": "",
                                   "note": "x" * 0x80, "big": "y" * 0x4000,
                                   "swahili": "Karibu ñ"}
    assert sentence.tag == "42"


def test_emulator_encodes_and_the_client_decodes(pair):
    left, right = pair
    replies = [reply_words("!re", {"name": "A", "comment": "a=b", "x": "z" * 0x200000}, "5"),
               reply_words("!done", {}, "5")]
    sender = threading.Thread(target=left.sendall,
                              args=(b"".join(sentence_bytes(r) for r in replies),))
    sender.start()
    reader = apiwire.SocketReader(right)
    assert [reader.read_sentence(), reader.read_sentence()] == replies
    sender.join()
    assert apiwire.parse_attributes(replies[0][1:]) == {
        "name": "A", "comment": "a=b", "x": "z" * 0x200000, ".tag": "5"}


@pytest.mark.parametrize("length, prefix", BOUNDARIES)
def test_both_codecs_read_and_write_the_same_prefixes(length, prefix):
    assert apiwire.encode_length(length) == prefix
    assert apiwire.decode_length(io.BytesIO(prefix).read) == length
