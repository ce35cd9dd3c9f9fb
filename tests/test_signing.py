"""The site key and request signatures shared by the agent and the hub."""
import stat

from portal import signing


def test_key_file_is_private_and_reloads(tmp_path):
    path = tmp_path / signing.SITE_KEY_FILE
    key = signing.load_or_create_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = signing.load_or_create_key(path)
    assert signing.public_bytes(again) == signing.public_bytes(key)


def test_signed_request_verifies_and_any_change_breaks_it():
    key = signing.new_key()
    raw = signing.public_bytes(key)
    body = b'{"events": []}'
    headers = signing.sign_headers(key, "cafe-1", "post", "/v1/sites/cafe-1/events", body,
                                   now=1_700_000_000)
    assert headers[signing.HEADER_KEY] == signing.key_id(raw)
    args = ("POST", "/v1/sites/cafe-1/events", headers[signing.HEADER_TIMESTAMP], body,
            headers[signing.HEADER_SIGNATURE])
    assert signing.verify(raw, *args)
    assert not signing.verify(raw, "POST", args[1], args[2], b'{"events": [1]}', args[4])
    assert not signing.verify(raw, "GET", *args[1:])
    assert not signing.verify(raw, "POST", "/v1/sites/cafe-2/events", *args[2:])
    assert not signing.verify(raw, "POST", args[1], "1700000001", body, args[4])
    assert not signing.verify(signing.public_bytes(signing.new_key()), *args)
    assert not signing.verify(raw, *args[:4], "not base64!")


def test_public_key_round_trip_and_bad_keys():
    key = signing.new_key()
    assert signing.decode_public_key(signing.public_key_b64(key)) == signing.public_bytes(key)
    for bad in ("", "abc", "AAAA", "!" * 44):
        try:
            signing.decode_public_key(bad)
        except ValueError:
            continue
        raise AssertionError(f"{bad!r} accepted")


def test_timestamp_window():
    assert signing.timestamp_fresh("1000", 1000)
    assert signing.timestamp_fresh("1300", 1000)
    assert not signing.timestamp_fresh("1301", 1000)
    assert not signing.timestamp_fresh("699", 1000)
    for bad in ("", "-5", "1e3", "١٠٠٠", "9" * 40):
        assert not signing.timestamp_fresh(bad, 1000)
