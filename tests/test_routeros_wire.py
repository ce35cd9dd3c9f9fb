"""The RouterOS API wire codec: lengths, words, sentences, attributes."""
import io
import socket

import pytest

from portal.routeros.wire import (
    SocketReader,
    WireError,
    decode_length,
    encode_length,
    encode_sentence,
    encode_word,
    parse_attributes,
)

BOUNDARIES = [
    (0, 1), (0x7F, 1), (0x80, 2), (0x3FFF, 2), (0x4000, 3), (0x1FFFFF, 3),
    (0x200000, 4), (0xFFFFFFF, 4), (0x10000000, 5),
]


@pytest.mark.parametrize("length,size", BOUNDARIES)
def test_length_round_trips_at_every_boundary(length, size):
    encoded = encode_length(length)
    assert len(encoded) == size
    stream = io.BytesIO(encoded + b"rest")
    assert decode_length(stream.read) == length
    assert stream.read() == b"rest"  # the decoder consumed exactly the prefix


def test_known_encodings():
    assert encode_length(256) == b"\x81\x00"
    assert encode_length(0x7F) == b"\x7f"
    assert encode_length(0x80) == b"\x80\x80"
    assert encode_length(0x4000) == b"\xc0\x40\x00"
    assert encode_length(0x200000) == b"\xe0\x20\x00\x00"
    assert encode_length(0x10000000) == b"\xf0\x10\x00\x00\x00"


def test_reserved_control_byte_is_an_error():
    with pytest.raises(WireError):
        decode_length(io.BytesIO(b"\xf8\x00\x00\x00\x00").read)


def test_lengths_out_of_range_are_refused():
    with pytest.raises(ValueError):
        encode_length(-1)
    with pytest.raises(ValueError):
        encode_length(0x100000000)


def test_words_and_sentences():
    assert encode_word("/login") == b"\x06/login"
    assert encode_word(b"") == b"\x00"
    assert encode_sentence(["!done"]) == b"\x05!done\x00"
    long_word = "x" * 256
    assert encode_word(long_word)[:2] == b"\x81\x00"


def test_socket_reader_reads_sentences_across_length_forms():
    left, right = socket.socketpair()
    with left, right:
        big = "=comment=" + "k" * 0x4000  # needs the 3-byte length form
        medium = "=name=" + "m" * 200  # 2-byte form
        left.sendall(b"\x00")  # an empty sentence is ignored
        left.sendall(encode_sentence(["/ip/hotspot/user/add", medium, big, "=password=", ".tag=7"]))
        left.sendall(encode_sentence(["/quit"]))
        reader = SocketReader(right)
        assert reader.read_sentence() == ["/ip/hotspot/user/add", medium, big, "=password=", ".tag=7"]
        assert reader.read_sentence() == ["/quit"]
        left.close()
        with pytest.raises(ConnectionError):
            reader.read_sentence()


def test_parse_attributes_keeps_equals_and_empty_values_as_strings():
    attrs = parse_attributes(["=comment=a=b=c", "=password=", "=name=123456", ".tag=5", "?name=x"])
    assert attrs == {"comment": "a=b=c", "password": "", "name": "123456", ".tag": "5"}
