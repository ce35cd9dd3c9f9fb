"""QR codes for voucher sheets, fast: thousands per second instead of about thirty.

The ``qrcode`` package spends most of each code choosing a mask (it builds the symbol
eight times and scores each) and computing Reed-Solomon with polynomial objects. A voucher
sheet's codes are all alike (the same login URL, only the code differs), so here:

- the version is the smallest that holds the text at error level M, and the mask is
  fixed (pattern 0): the standard lets an encoder choose any mask, a reader reads all;
- the symbol's fixed parts (finder, timing, alignment, format and version information)
  come from ``qrcode`` itself, once per version, and so does the block table;
- the data and its error correction are computed with log tables, and laid into the
  free modules in the standard's zig-zag order, masked.

``tests/test_venue_printing.py`` checks the result module for module against ``qrcode``
with the same version and mask, and decodes printed sheets with zbarimg.

A symbol is drawn as a 1-bit PNG, one pixel a module (about 300 bytes as a data: URL;
the browser scales it up with ``image-rendering: pixelated``, sharp on paper too), so a
sheet of 5,000 cards stays a few megabytes.
"""
from __future__ import annotations

import base64
import struct
import zlib
from functools import lru_cache
from operator import itemgetter

MASK = 0
#: Error correction M (``qrcode.constants.ERROR_CORRECT_M``). ``qrcode`` itself is imported
#: where its tables are read, once per version: a process that prints nothing (the agent,
#: most page views) does not carry it.
_LEVEL = 0
_BYTE_MODE = 0b0100

# GF(256) with the QR polynomial x^8 + x^4 + x^3 + x^2 + 1.
_EXP = [0] * 512
_LOG = [0] * 256
_value = 1
for _power in range(255):
    _EXP[_power] = _value
    _LOG[_value] = _power
    _value <<= 1
    if _value & 0x100:
        _value ^= 0x11D
for _power in range(255, 512):
    _EXP[_power] = _EXP[_power - 255]


@lru_cache(maxsize=None)
def _generator_products(ec_count: int) -> list[int]:
    """For each byte value f: f times the generator polynomial's coefficients (after the
    leading 1), as one integer of ``ec_count`` bytes, so a division step is one XOR."""
    generator = [1]
    for i in range(ec_count):
        nxt = [0] * (len(generator) + 1)
        for j, coefficient in enumerate(generator):
            nxt[j] ^= coefficient
            if coefficient:
                nxt[j + 1] ^= _EXP[_LOG[coefficient] + i]
        generator = nxt
    tail = generator[1:]
    return [0] + [int.from_bytes(bytes(_EXP[_LOG[f] + _LOG[g]] if g else 0 for g in tail), "big")
                  for f in range(1, 256)]


def _error_correction(data: bytes, ec_count: int) -> bytes:
    """The Reed-Solomon error-correction bytes of one block (polynomial division)."""
    products = _generator_products(ec_count)
    shift, keep = 8 * (ec_count - 1), (1 << 8 * ec_count) - 1
    remainder = 0
    for byte in data:
        remainder = ((remainder << 8) & keep) ^ products[byte ^ (remainder >> shift)]
    return remainder.to_bytes(ec_count, "big")


@lru_cache(maxsize=None)
def _layout(version: int):
    """Per version: the symbol's fixed modules as a string ("1" dark) with the data
    cells' places, how to scatter the data bits into it, the mask over the data bits,
    the blocks and the data capacity in bytes."""
    import qrcode

    symbol = qrcode.QRCode(version=version, error_correction=_LEVEL, mask_pattern=MASK)
    n = symbol.modules_count = version * 4 + 17
    symbol.modules = [[None] * n for _ in range(n)]
    for row, col in ((0, 0), (n - 7, 0), (0, n - 7)):
        symbol.setup_position_probe_pattern(row, col)
    symbol.setup_position_adjust_pattern()
    symbol.setup_timing_pattern()
    symbol.setup_type_info(False, MASK)
    if version >= 7:
        symbol.setup_type_number(False)
    positions = []
    row, step = n - 1, -1
    for col in range(n - 1, 0, -2):
        if col <= 6:
            col -= 1  # the vertical timing pattern takes column 6
        while 0 <= row < n:
            positions.extend((row, c) for c in (col, col - 1) if symbol.modules[row][c] is None)
            row += step
        row -= step
        step = -step
    fixed = "".join("1" if m else "0" for line in symbol.modules for m in line)
    # Cell i of the symbol is character scatter[i] of fixed + data bits.
    order = {row * n + col: n * n + index for index, (row, col) in enumerate(positions)}
    scatter = itemgetter(*[order.get(cell, cell) for cell in range(n * n)])
    # Mask 0 darkens the modules where row + column is even: flip the data bit there.
    mask = int("".join("1" if (r + c) % 2 == 0 else "0" for r, c in positions), 2)
    import qrcode.base

    blocks = qrcode.base.rs_blocks(version, _LEVEL)
    return n, fixed, scatter, mask, len(positions), blocks, sum(b.data_count for b in blocks)


def _fits(version: int, size: int) -> bool:
    count_bits = 8 if version < 10 else 16
    return 4 + count_bits + 8 * size <= 8 * _layout(version)[-1]


def modules(text: str) -> tuple[int, str]:
    """The QR symbol for ``text`` (UTF-8, byte mode, level M, mask 0), without border:
    its size n and n * n characters, row by row, "1" for a dark module."""
    data = text.encode("utf-8")
    version = next((v for v in range(1, 41) if _fits(v, len(data))), None)
    if version is None:
        raise ValueError("text too long for a QR code")
    n, fixed, scatter, mask, places, blocks, capacity = _layout(version)
    count_bits = 8 if version < 10 else 16
    bits = (_BYTE_MODE << count_bits | len(data)) << 8 * len(data) | int.from_bytes(data, "big")
    length = 4 + count_bits + 8 * len(data)
    terminator = min(4, 8 * capacity - length)
    bits, length = bits << terminator, length + terminator
    bits, length = bits << (-length % 8), length + (-length % 8)
    stream = bits.to_bytes(length // 8, "big")
    stream += bytes((0xEC, 0x11) * capacity)[:capacity - len(stream)]
    data_blocks, ec_blocks, offset = [], [], 0
    for block in blocks:
        chunk = stream[offset:offset + block.data_count]
        offset += block.data_count
        data_blocks.append(chunk)
        ec_blocks.append(_error_correction(chunk, block.total_count - block.data_count))
    codewords = [b[i] for i in range(max(map(len, data_blocks))) for b in data_blocks
                 if i < len(b)]
    codewords += [b[i] for i in range(len(ec_blocks[0])) for b in ec_blocks]
    # The codewords then the remainder bits (zeros), masked, scattered into their cells.
    placed = int.from_bytes(bytes(codewords), "big") << (places - 8 * len(codewords))
    data_bits = format(placed ^ mask, f"0{places}b")
    return n, "".join(scatter(fixed + data_bits))


def matrix(text: str) -> list[list[bool]]:
    """The symbol for ``text`` as rows of booleans (True: dark), as ``qrcode`` gives it."""
    n, cells = modules(text)
    return [[cell == "1" for cell in cells[row * n:(row + 1) * n]] for row in range(n)]


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(
        ">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


_INVERT = str.maketrans("01", "10")  # a dark module is 0 in greyscale


def png(n: int, cells: str, *, scale: int = 1, border: int = 2) -> bytes:
    """A 1-bit greyscale PNG of a symbol (``modules()``): ``scale`` pixels a module,
    ``border`` modules of white around it (the quiet zone). One pixel a module is enough
    for a page: the browser scales it up without smoothing (``image-rendering``)."""
    size = (n + 2 * border) * scale
    width = (size + 7) // 8
    white = b"\x00" + b"\xff" * width
    edge, pad = "1" * border * scale, "1" * (-size % 8)
    light = cells.translate(_INVERT)
    if scale > 1:
        light = "".join(bit * scale for bit in light)
    raw = [white] * (border * scale)
    span = n * scale
    for start in range(0, n * span, span):
        bits = int(edge + light[start:start + span] + edge + pad, 2)
        raw.extend([b"\x00" + bits.to_bytes(width, "big")] * scale)
    raw.extend([white] * (border * scale))
    header = struct.pack(">IIBBBBB", size, size, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header)
            + _chunk(b"IDAT", zlib.compress(b"".join(raw))) + _chunk(b"IEND", b""))


def data_url(text: str) -> str:
    """``text`` as a QR code in a ``data:image/png`` URL (for an <img> on a sheet)."""
    return "data:image/png;base64," + base64.b64encode(png(*modules(text))).decode("ascii")
