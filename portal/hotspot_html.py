"""The router's hotspot HTML directory: per-site rendering and a RouterOS page interpreter.

The files in ``hotspot-html/`` carry two kinds of markers. ``{{PORTAL_URL}}``,
``{{SITE_NAME}}`` and ``{{PRIMARY_COLOR}}`` are filled in here, once per site, before
the files are uploaded to (or fetched by) the router. ``$(...)`` belongs to the
router, which expands it on every request; the renderer never touches it.
``ros_template_render`` imitates that second step so tests (and the emulator) can
see a page as a phone would.
"""

from __future__ import annotations

import html
import io
import re
import zipfile
from pathlib import Path


def _locate_hotspot_dir() -> Path:
    """Find the hotspot folder in a source checkout first, then inside an installed wheel."""
    here = Path(__file__).resolve().parent
    candidates = (here.parent / "hotspot-html", here / "hotspot_html_files")
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


# ---------------------------------------------------------------------------
# The RouterOS page language, as the router expands it.

_ROS_TAG = re.compile(r"\$\(([^()]*)\)")
_CONDITION = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*(?:(==|!=)\s*(.*?))?\s*$")


class RosTemplateError(ValueError):
    """A hotspot page whose $(if)/$(elif)/$(else)/$(endif) structure does not balance."""


def _literal(raw: str) -> str:
    """Strip one pair of matching quotes: the manual writes both 'true' and "Location"."""
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
        return raw[1:-1]
    return raw


def _condition_holds(expression: str, variables: dict) -> bool:
    """Evaluate `x`, `x == y` or `x != y` the way the router does: unset means empty."""
    match = _CONDITION.match(expression)
    if match is None:
        raise RosTemplateError(f"cannot read condition {expression!r}")
    name, operator, raw_value = match.groups()
    actual = str(variables.get(name, ""))
    if operator is None:
        return actual != ""
    expected = _literal(raw_value)
    return actual == expected if operator == "==" else actual != expected


def ros_template_render(text: str, variables: dict) -> str:
    """Render a hotspot page as RouterOS would: $(var), $(if ...), $(elif ...), $(else), $(endif).

    Values are substituted verbatim (the router does not HTML-escape them) and the
    result is not scanned again. http-status / http-header blocks, which set
    response headers on a real router, are treated as ordinary conditions.
    """
    out: list[str] = []
    # One frame per open $(if): [branch_taken, emitting, parent_emitting, seen_else].
    stack: list[list[bool]] = []
    emitting = True
    position = 0
    for match in _ROS_TAG.finditer(text):
        if emitting:
            out.append(text[position:match.start()])
        position = match.end()
        tag = match.group(1).strip()
        keyword, _, rest = tag.partition(" ")
        if keyword == "if":
            holds = emitting and _condition_holds(rest, variables)
            stack.append([holds, holds, emitting, False])
        elif keyword in ("elif", "else", "endif"):
            if not stack:
                raise RosTemplateError(f"$({tag}) without $(if) at offset {match.start()}")
            frame = stack[-1]
            if keyword == "endif":
                stack.pop()
                emitting = frame[2]
                continue
            if frame[3]:
                raise RosTemplateError(f"$({tag}) after $(else) at offset {match.start()}")
            if keyword == "else":
                frame[3] = True
                holds = frame[2] and not frame[0]
            else:
                holds = frame[2] and not frame[0] and _condition_holds(rest, variables)
            frame[0] = frame[0] or holds
            frame[1] = holds
        else:
            if emitting:
                out.append(str(variables.get(tag, "")))
            continue
        emitting = stack[-1][1] if stack else True
    if stack:
        raise RosTemplateError(f"{len(stack)} $(if) block(s) never closed by $(endif)")
    if emitting:
        out.append(text[position:])
    return "".join(out)
