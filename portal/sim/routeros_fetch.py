"""``/tool/fetch`` of the RouterOS emulator: a real HTTP download, as the router does it.

The router fetches the hotspot pages from the appliance; the emulator downloads them
for real (stdlib ``urllib``), so a test can compare the bytes the router stored with
the bytes the appliance served. Only ``mode=http``/``https`` URLs are fetched; the
download runs outside the router's lock so a slow server never stalls other sessions.
"""
from __future__ import annotations

import urllib.error
import urllib.request

from portal.sim.routeros_menus import SimTrap

#: A hotspot page is a few KB; anything past this is not what the router was asked for.
MAX_BYTES = 4 * 1024 * 1024


def download(attrs: dict, timeout: float = 10.0) -> bytes:
    """The body at ``attrs['url']``; SimTrap with the router's kind of message otherwise."""
    url = attrs.get("url", "")
    if not url:
        raise SimTrap("missing value(s) of argument(s) url", 1)
    if not url.lower().startswith(("http://", "https://")):
        # UNCONFIRMED: the router's text for a scheme it cannot fetch
        raise SimTrap("failure: unsupported URL scheme", 1)
    request = urllib.request.Request(url, headers={"User-Agent": "Mikrotik/7.x Fetch"})
    try:
        # A router fetches directly: never through this machine's proxy settings.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(request, timeout=timeout) as response:
            body = response.read(MAX_BYTES + 1)
    except urllib.error.HTTPError as exc:
        # UNCONFIRMED: the exact wording; the router names the status line it got
        raise SimTrap(f"failure: closing connection: <{exc.code} {exc.reason}> {url}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise SimTrap(f"failure: could not connect: {reason}") from None
    if len(body) > MAX_BYTES:
        raise SimTrap("failure: file too big")
    return body
