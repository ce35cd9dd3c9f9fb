"""The router's hotspot HTML directory, rendered for one site.

The files in ``hotspot-html/`` carry two kinds of markers. ``{{PORTAL_URL}}``,
``{{SITE_NAME}}`` and ``{{PRIMARY_COLOR}}`` are filled in here, once per site, before
the files are uploaded to (or fetched by) the router. ``$(...)`` belongs to the
router, which expands it on every request; the renderer never touches it, and a ``$`` in
a site value is written ``&#36;`` so the router never reads the venue's name as its own.
"""

from __future__ import annotations

import html
import io
import re
import zipfile
from functools import lru_cache
from pathlib import Path


def _locate_hotspot_dir() -> Path:
    """Find the hotspot folder in a source checkout first, then inside an installed wheel."""
    package = Path(__file__).resolve().parent.parent
    candidates = (package.parent / "hotspot-html", package / "hotspot_html_files")
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    # Import must not fail on a broken install; rendering will raise FileNotFoundError.
    return candidates[0]


HOTSPOT_DIR = _locate_hotspot_dir()

# A fixed list rather than a directory listing: it is the allow-list that keeps
# render_file from ever opening a path the caller made up.
HOTSPOT_FILES = [
    "alogin.html",
    "error.html",
    "errors.txt",
    "login.html",
    "logout.html",
    "md5.js",
    "redirect.html",
    "rlogin.html",
    "status.html",
]

DEFAULT_PRIMARY_COLOR = "#0a7d4f"

_PLACEHOLDER = re.compile(r"\{\{(PORTAL_URL|SITE_NAME|PRIMARY_COLOR)\}\}")
# The color lands inside <style>, where HTML escaping does not apply: only accept
# shapes that cannot close the element or smuggle CSS.
_COLOR = re.compile(r"#[0-9a-fA-F]{3}(?:[0-9a-fA-F]{3})?|[a-zA-Z]{3,20}")
_PORTAL_URL = re.compile(r"https?://[A-Za-z0-9.\-\[\]:]+(?:/[A-Za-z0-9._~\-/]*)?")


def _site_values(portal_url: str, site_name: str, primary_color: str) -> dict[str, str]:
    """Validate the per-site values and return them HTML-escaped, keyed by placeholder."""
    if not _PORTAL_URL.fullmatch(portal_url or ""):
        raise ValueError(f"portal_url must look like http://10.5.50.2:8080, got {portal_url!r}")
    if not _COLOR.fullmatch(primary_color or ""):
        raise ValueError(f"primary_color must be #rgb, #rrggbb or a color name, got {primary_color!r}")
    if not (site_name or "").strip():
        raise ValueError("site_name must not be empty")
    return {
        # Pages append "/..." themselves; a trailing slash here would double it.
        "PORTAL_URL": html.escape(portal_url.rstrip("/"), quote=True),
        "SITE_NAME": router_text(site_name.strip()),
        "PRIMARY_COLOR": html.escape(primary_color, quote=True),
    }


def router_text(value: str) -> str:
    """``value`` HTML-escaped for a hotspot page, its ``$`` too.

    The router expands every ``$(...)`` in the pages it serves; ``&#36;`` is a dollar sign
    to the phone's browser and nothing to the router.
    """
    return html.escape(value, quote=True).replace("$", "&#36;")


#: The head every page shares (meta tags, title, base styles), kept in one file so a
#: style change is made once; pages add their own rules after it.
PAGE_HEAD_FILE = "_page-head.html"


def _fill(text: str, values: dict[str, str]) -> str:
    """Insert the shared head, then replace the {{...}} site placeholders.

    RouterOS $(...) stays untouched.
    """
    if "{{PAGE_HEAD}}" in text:
        head = (HOTSPOT_DIR / PAGE_HEAD_FILE).read_text(encoding="utf-8").rstrip("\n")
        text = text.replace("{{PAGE_HEAD}}", head)
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], text)


# -- the router's login errors, as login.html passes them to the portal ----------------------

#: What the customer reads for each error key of the router's errors.txt (no variables:
#: the username or error-orig the router fills in is never shown back).
ROUTER_ERRORS = {
    "internal-error": ("The router had an internal error. Please try again.",
                       "Hitilafu ya ruta. Tafadhali jaribu tena."),
    "config-error": ("Hotspot setup error. Please tell the staff.",
                     "Hitilafu ya mipangilio. Tafadhali mwambie mhudumu."),
    "not-logged-in": ("You are not logged in.", "Hujaingia mtandaoni."),
    "ippool-empty": ("The WiFi is full right now. Try again later.",
                     "WiFi imejaa sasa. Jaribu tena baadaye."),
    "shutting-down": ("The WiFi is restarting. Try again in a minute.",
                      "WiFi inaanza upya. Jaribu tena baada ya dakika moja."),
    "user-session-limit": ("This code is already in use on another device.",
                           "Msimbo huu tayari unatumika kwenye kifaa kingine."),
    "license-session-limit": ("The WiFi is full right now. Try again later.",
                              "WiFi imejaa sasa. Jaribu tena baadaye."),
    "wrong-mac-username": ("This device is not allowed to use that code.",
                           "Kifaa hiki hakiruhusiwi kutumia msimbo huo."),
    "chap-missing": ("Your browser did not answer the login check. Reload this page and try "
                     "again.", "Kivinjari hakikujibu. Pakia ukurasa upya ujaribu tena."),
    "invalid-username": ("Wrong or unknown code. Check it and try again.",
                         "Msimbo si sahihi. Angalia na ujaribu tena."),
    "invalid-mac": ("This code cannot be used from this device.",
                    "Msimbo huu hauwezi kutumika kwenye kifaa hiki."),
    "uptime-limit": ("The time on this code is used up. Buy a new package.",
                     "Muda wa msimbo huu umekwisha. Nunua kifurushi kipya."),
    "traffic-limit": ("The data on this code is used up. Buy a new package.",
                      "Data ya msimbo huu imekwisha. Nunua kifurushi kipya."),
    "radius-timeout": ("The login server is not answering. Try again.",
                       "Seva ya kuingia haijibu. Jaribu tena."),
    "auth-in-progress": ("Already logging you in, please wait.",
                         "Tayari tunakuingiza, tafadhali subiri."),
}
#: Any other non-empty error: never the words sent (anyone can put text in ``?error=``).
ROUTER_ERROR_GENERIC = ("The router could not log you in. Please try again.",
                        "Ruta haikuweza kukuingiza. Tafadhali jaribu tena.")
#: RouterOS's own errors.txt, for a router still on its stock hotspot pages.
ROUTEROS_STOCK_ERRORS = {
    "internal-error": "internal error ($(error-orig))",
    "config-error": "configuration error ($(error-orig))",
    "not-logged-in": "you are not logged in (ip $(ip))",
    "ippool-empty": "cannot assign ip address - no more free addresses from pool",
    "shutting-down": "hotspot service is shutting down",
    "user-session-limit": "no more sessions are allowed for user $(username)",
    "license-session-limit": "session limit reached ($(error-orig))",
    "wrong-mac-username": "invalid username ($(username)): this MAC address is not yours",
    "chap-missing": "web browser did not send challenge response (try again, enable JavaScript)",
    "invalid-username": "invalid username or password",
    "invalid-mac": "user $(username) is not allowed to log in from this MAC address",
    "uptime-limit": "user $(username) has reached uptime limit",
    "traffic-limit": "user $(username) has reached traffic limit",
    "radius-timeout": "RADIUS server is not responding",
    "auth-in-progress": "already authorizing, retry later",
}
MAX_ROUTER_ERROR = 400
_ROUTER_VARIABLE = re.compile(r"\$\([^()]*\)")


def _error_pattern(message: str) -> re.Pattern:
    """A message of errors.txt as a pattern: each $(variable) stands for a short text."""
    pieces = _ROUTER_VARIABLE.split(" ".join(message.split()))
    return re.compile(r".{0,80}?".join(re.escape(piece) for piece in pieces), re.I)


@lru_cache(maxsize=1)
def _error_patterns() -> list[tuple[str, re.Pattern]]:
    """(key, pattern) for Kibanda's errors.txt and for RouterOS's stock one."""
    messages = []
    errors_txt = HOTSPOT_DIR / "errors.txt"
    if errors_txt.is_file():
        for line in errors_txt.read_text(encoding="utf-8").splitlines():
            key, sep, message = line.partition("=")
            if sep and not line.lstrip().startswith("#") and key.strip() in ROUTER_ERRORS:
                messages.append((key.strip(), message.strip()))
    messages.extend(ROUTEROS_STOCK_ERRORS.items())
    return [(key, _error_pattern(message)) for key, message in messages]


def router_error_key(text: str | None) -> str | None:
    """The errors.txt key of an error the router's login page passed on, or None.

    Known: the key itself, or the message of Kibanda's or RouterOS's errors.txt with the
    router's variables filled in. radius-reply (whatever a RADIUS server said) is not.
    """
    text = " ".join((text or "").split())
    if not text or len(text) > MAX_ROUTER_ERROR:
        return None
    if text.lower() in ROUTER_ERRORS:
        return text.lower()
    for key, pattern in _error_patterns():
        if pattern.fullmatch(text):
            return key
    return None


def router_error_message(text: str | None, lang: str) -> str:
    """What the landing page says about the router's error: '' for none, a known
    message in the customer's language, else only that the router could not log them in."""
    if not (text or "").strip():
        return ""
    english, swahili = ROUTER_ERRORS.get(router_error_key(text) or "", ROUTER_ERROR_GENERIC)
    return swahili if lang == "sw" else english


def render_file(
    name: str, portal_url: str, site_name: str, primary_color: str = DEFAULT_PRIMARY_COLOR
) -> bytes:
    """Return one hotspot file with this site's placeholders filled in, as UTF-8 bytes."""
    if name not in HOTSPOT_FILES:
        raise FileNotFoundError(f"no hotspot file named {name!r}")
    values = _site_values(portal_url, site_name, primary_color)
    text = (HOTSPOT_DIR / name).read_text(encoding="utf-8")
    return _fill(text, values).encode("utf-8")


def render_all(
    portal_url: str, site_name: str, primary_color: str = DEFAULT_PRIMARY_COLOR
) -> dict[str, bytes]:
    """Return every hotspot file rendered for this site, keyed by file name."""
    return {
        name: render_file(name, portal_url, site_name, primary_color) for name in HOTSPOT_FILES
    }


def render_directory(
    target_dir: str | Path,
    portal_url: str,
    site_name: str,
    primary_color: str = DEFAULT_PRIMARY_COLOR,
) -> list[Path]:
    """Write the rendered hotspot files into target_dir (created if missing); return their paths."""
    rendered = render_all(portal_url, site_name, primary_color)
    target = Path(target_dir)
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for name, content in rendered.items():
        path = target / name
        path.write_bytes(content)
        written.append(path)
    return written


def render_zip(
    portal_url: str, site_name: str, primary_color: str = DEFAULT_PRIMARY_COLOR
) -> bytes:
    """Return a zip (flat, no folders) of the rendered hotspot files for a technician to upload."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, content in render_all(portal_url, site_name, primary_color).items():
            archive.writestr(name, content)
    return buffer.getvalue()
