"""The fast QR encoder for voucher sheets: the same symbol as the qrcode package, decodable."""
from __future__ import annotations

import subprocess

import pytest
import qrcode
from system_tools import require

from portal.venue import qr
from portal.venue.printing import login_url


def reference(text: str) -> list[list[bool]]:
    """What the qrcode package draws for ``text`` with the same level, mask and mode."""
    symbol = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M,
                           mask_pattern=qr.MASK, border=0)
    symbol.add_data(text.encode("utf-8"), optimize=0)
    symbol.make(fit=True)
    return symbol.modules


@pytest.mark.parametrize("text", [
    "a", login_url("wifi.mamanjeri.co.ke", "48213377"),
    login_url("wifi.kibanda.lan", "KB-7XQ2M9PD"), "Msimbo: ü é ñ 😀",
    "x" * 150,  # version 7 and up carry version information
    "y" * 300,  # version 10 and up count bytes in 16 bits; blocks of two sizes
])
def test_the_symbol_is_module_for_module_the_reference(text):
    assert qr.matrix(text) == reference(text)


def test_too_long_text_is_refused():
    with pytest.raises(ValueError):
        qr.modules("z" * 3000)


def test_png_decodes_to_the_login_url(tmp_path):
    url = login_url("wifi.mamanjeri.co.ke", "00712345")
    picture = tmp_path / "code.png"
    picture.write_bytes(qr.png(*qr.modules(url), scale=4))  # zbarimg wants a few pixels a module
    assert qr.data_url(url).startswith("data:image/png;base64,iVBORw0KGgo")
    found = subprocess.run([require("zbarimg"), "--raw", "-q", str(picture)],
                           capture_output=True, text=True, timeout=60, check=False).stdout
    assert found.strip() == url
