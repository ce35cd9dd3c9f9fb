"""The router's hotspot HTML directory, rendered for one site.

The files in ``hotspot-html/`` carry two kinds of markers. ``{{PORTAL_URL}}``,
``{{SITE_NAME}}`` and ``{{PRIMARY_COLOR}}`` are filled in here, once per site, before
the files are uploaded to (or fetched by) the router. ``$(...)`` belongs to the
router, which expands it on every request; the renderer never touches it.
"""

from __future__ import annotations

import html
import io
import re
import zipfile
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
        "SITE_NAME": html.escape(site_name.strip(), quote=True),
        "PRIMARY_COLOR": html.escape(primary_color, quote=True),
    }


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
