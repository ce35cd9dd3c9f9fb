"""The venue's look: name, colour, logo and help phone, changed by the owner.

Configuration (``SITE_NAME``, ``PRIMARY_COLOR``, ``SITE_LOGO_URL``, ``SUPPORT_PHONE``) is
the base; what the owner saved in the Setting table wins. The logo file lives in
``<instance>/branding/``; the Setting row only names its type and version, so reading the
branding is one query and never touches the disk.
"""
from __future__ import annotations

import base64
import hashlib
import io
import logging
import os
import re
import warnings
from pathlib import Path


from ..errors import InvalidPhone, ValidationError
from ..models import AuditLog, Setting, db
from ..phone import dial_uri, display_phone, normalise_phone
from .settings import set_setting

log = logging.getLogger(__name__)

NAME, COLOR, PHONE, LOGO, SSID = ("branding.site_name", "branding.primary_color",
                                  "branding.support_phone", "branding.logo", "branding.ssid")
DEFAULT_COLOR = "#0a7d4f"
MAX_NAME = 60
MAX_LOGO_BYTES = 200 * 1024
#: A phone photo is resized to fit this box before it is stored: shown 40 px high (three
#: times that for sharp screens), and light enough to keep a customer page under 60 KB.
LOGO_BOX = (360, 120)
#: What an owner may upload: a phone photo is a few MB; bigger files are refused.
MAX_UPLOAD_BYTES = 12 * 1024 * 1024
#: Pixels Pillow may decode (a 48 MP phone camera); more is refused, never decoded.
MAX_UPLOAD_PIXELS = 50_000_000
MAX_SSID = 32
LOGO_TYPES = {"png": "image/png", "jpg": "image/jpeg"}
# Owners get hex only; configuration may also name a colour (it lands inside <style>).
_OWNER_COLOR = re.compile(r"^#(?:[0-9a-fA-F]{3}){1,2}$")
_CONFIG_COLOR = re.compile(r"^(#[0-9a-fA-F]{3}(?:[0-9a-fA-F]{3})?|[a-zA-Z]{3,20})$")


def _stored() -> dict[str, str]:
    """Every branding setting in one query."""
    rows = Setting.select(Setting.key, Setting.value).where(
        Setting.key.in_([NAME, COLOR, PHONE, LOGO, SSID]),
        Setting.encrypted == False)  # noqa: E712
    return {row.key: row.value for row in rows}


def text_color(color: str) -> str:
    """White or near-black, whichever reads better on ``color`` (WCAG contrast)."""
    if not color.startswith("#"):
        return "#fff"
    digits = color[1:] if len(color) == 7 else "".join(c * 2 for c in color[1:])
    channels = [int(digits[i:i + 2], 16) / 255 for i in (0, 2, 4)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    luminance = 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]
    return "#fff" if (1.05 / (luminance + 0.05)) >= (luminance + 0.05) / 0.05 else "#1b1b1b"


def _config_logo(config) -> str:
    logo = str(config.get("SITE_LOGO_URL") or "")
    portal = str(config.get("PORTAL_URL") or "").rstrip("/")
    # The walled garden blocks the internet before login: only a logo served here shows.
    if (logo.startswith("/") and not logo.startswith("//")) or (
            portal and logo.startswith(portal + "/")):
        return logo
    return ""


def branding(config) -> dict:
    """The venue's name, colour, help phone and logo: the owner's values over configuration."""
    return _merge(config, _stored())


def branding_from_config(config) -> dict:
    """``branding`` from configuration alone (when the database cannot be read)."""
    return _merge(config, {})


def _merge(config, stored: dict[str, str]) -> dict:
    color = stored.get(COLOR) or str(config.get("PRIMARY_COLOR") or "")
    color = color if _CONFIG_COLOR.match(color) else DEFAULT_COLOR
    # An owner who cleared the help phone means "none", not "back to configuration".
    phone = (stored[PHONE] if PHONE in stored else str(config.get("SUPPORT_PHONE") or "")).strip()
    shown, tel = (display_phone(phone, "spaced"), dial_uri(phone)) if phone else ("", "")
    kind, _, version = stored.get(LOGO, "").partition(":")
    owner_logo = kind in LOGO_TYPES
    ssid = (stored[SSID] if SSID in stored else str(config.get("WIFI_NAME") or "")).strip()
    return {"name": stored.get(NAME) or str(config.get("SITE_NAME") or "") or "Kibanda WiFi",
            "color": color, "text_color": text_color(color), "support_phone": shown,
            "support_tel": tel, "ssid": ssid,
            "logo_url": f"/branding/logo?v={version}" if owner_logo else _config_logo(config),
            "logo_version": version if owner_logo else "", "logo_type": kind if owner_logo else ""}


def save_branding(actor: str, address: str, *, name: str, color: str,
                  support_phone: str, ssid: str | None = None) -> None:
    """Validate and store the owner's name, colour, help phone and, when given, the WiFi
    name printed on vouchers (audit-logged)."""
    name = " ".join((name or "").split())
    if not 1 <= len(name) <= MAX_NAME:
        raise ValidationError("venue name empty or too long", field="name",
                              en="Give the venue a name (up to 60 characters).",
                              sw="Andika jina la biashara (hadi herufi 60).")
    if "$(" in name:
        # The router would run it in its hotspot pages (the renderer escapes it anyway).
        raise ValidationError("venue name with $(", field="name",
                              en="The name cannot contain $( : the WiFi router would read it "
                                 "as a command.",
                              sw="Jina haliwezi kuwa na $( : ruta ya WiFi ingelisoma kama "
                                 "amri.")
    color = (color or "").strip().lower()
    if not _OWNER_COLOR.match(color):
        raise ValidationError(f"invalid colour {color!r}", field="color",
                              en="The colour must look like #0a7d4f (# and 6 letters or digits).",
                              sw="Rangi iandikwe kama #0a7d4f (# na herufi au tarakimu 6).")
    phone = (support_phone or "").strip()
    if phone:
        try:
            phone = normalise_phone(phone)
        except InvalidPhone as exc:
            raise ValidationError(f"invalid help phone {support_phone!r}", field="support_phone",
                                  en="The help phone must be a Kenyan mobile number such as "
                                     "0712 345 678, or empty.",
                                  sw="Namba ya msaada iwe namba ya simu ya Kenya kama "
                                     "0712 345 678, au iachwe wazi.") from exc
    values = [(NAME, name), (COLOR, color), (PHONE, phone)]
    if ssid is not None:
        values.append((SSID, _checked_ssid(ssid)))
    with db.atomic():
        for key, value in values:
            set_setting(key, value)
        AuditLog.write(actor, "branding.update",
                       f"name={name!r} color={color} phone={phone or '-'}", address, name=name)


def _checked_ssid(ssid: str) -> str:
    """A WiFi name as the router takes it: up to 32 printable characters (may be empty)."""
    ssid = (ssid or "").strip()
    if len(ssid.encode("utf-8")) > MAX_SSID or any(not c.isprintable() for c in ssid) \
            or "$(" in ssid:
        raise ValidationError("invalid ssid", field="ssid",
                              en="The WiFi name must be at most 32 letters, digits or signs, "
                                 "as on the router.",
                              sw="Jina la WiFi lisizidi herufi, tarakimu au alama 32, kama "
                                 "kwenye ruta.")
    return ssid


def logo_kind(data: bytes) -> str | None:
    """``png`` or ``jpg`` from the file's first bytes (never its name), else None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR":
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpg"
    return None


def logo_folder(instance: str | os.PathLike) -> Path:
    """``<instance>/branding``: where the owner's logo file lives."""
    return Path(instance) / "branding"


def check_logo(data: bytes) -> str:
    """``png`` or ``jpg`` for an acceptable logo (at most 200 KB), else ValidationError."""
    if not data:
        raise ValidationError("empty logo", field="logo", en="Choose a PNG or JPEG picture.",
                              sw="Chagua picha ya PNG au JPEG.")
    if len(data) > MAX_LOGO_BYTES:
        raise ValidationError(f"logo of {len(data)} bytes", field="logo",
                              en="The logo is too big: at most 200 KB.",
                              sw="Nembo ni kubwa mno: isizidi KB 200.")
    kind = logo_kind(data)
    if kind is None:
        # SVG is refused too: it can carry script that would run on the portal's origin.
        raise ValidationError("logo is not PNG or JPEG", field="logo",
                              en="The logo must be a PNG or JPEG picture.",
                              sw="Nembo lazima iwe picha ya PNG au JPEG.")
    return kind


def prepare_logo(data: bytes) -> bytes:
    """The logo to store for an uploaded picture: a small PNG or JPEG as it is; anything
    bigger (a phone photo) turned upright and resized to fit LOGO_BOX. ValidationError
    for a file that is not a picture, or too big to decode safely."""
    kind = logo_kind(data)
    if kind and len(data) <= MAX_LOGO_BYTES:
        return data
    if not data:
        check_logo(data)  # raises: no picture chosen
    # Pillow only when a big photo arrives: no page view or agent cycle carries it.
    from PIL import Image, ImageOps, UnidentifiedImageError

    not_a_picture = ValidationError("logo is not a picture", field="logo",
                                    en="The logo must be a PNG or JPEG picture.",
                                    sw="Nembo lazima iwe picha ya PNG au JPEG.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            picture = Image.open(io.BytesIO(data))
            if picture.format not in ("PNG", "JPEG", "WEBP", "GIF", "BMP"):
                raise not_a_picture  # SVG and the rest: refused, never converted
            width, height = picture.size
            if width * height > MAX_UPLOAD_PIXELS:
                raise ValidationError(f"logo of {width}x{height} pixels", field="logo",
                                      en="The picture is too large to use. Choose a smaller "
                                         "one.",
                                      sw="Picha ni kubwa mno kutumika. Chagua ndogo zaidi.")
            picture = ImageOps.exif_transpose(picture)
            picture.thumbnail(LOGO_BOX)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError,
            Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise not_a_picture from exc
    out = io.BytesIO()
    if picture.mode in ("RGBA", "LA", "PA") or "transparency" in picture.info:
        picture.convert("RGBA").save(out, "PNG", optimize=True)
    else:
        picture.convert("RGB").save(out, "JPEG", quality=80, optimize=True)
    check_logo(out.getvalue())
    return out.getvalue()


def logo_data_url(site: dict, instance: str | os.PathLike) -> str:
    """The owner's logo as a ``data:`` URL (a printed sheet carries it inside), or ""."""
    kind = site.get("logo_type") or ""
    path = logo_file(kind, instance) if kind in LOGO_TYPES else None
    if path is None:
        return ""
    return f"data:{LOGO_TYPES[kind]};base64," + base64.b64encode(path.read_bytes()).decode()


def save_logo(actor: str, address: str, data: bytes, *, instance: str | os.PathLike) -> str:
    """Store a PNG or JPEG logo in place of the old one; return its version."""
    kind = check_logo(data)
    version = hashlib.sha256(data).hexdigest()[:12]
    folder = logo_folder(instance)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".logo-{version}.tmp"
    tmp.write_bytes(data)
    os.replace(tmp, folder / f"logo.{kind}")  # a reader sees the old file or the new one
    with db.atomic():
        set_setting(LOGO, f"{kind}:{version}")
        AuditLog.write(actor, "branding.logo", f"{kind}, {len(data) // 1024 + 1} KB", address,
                       kind=kind, kb=len(data) // 1024 + 1)
    for other in LOGO_TYPES:
        if other != kind:
            (folder / f"logo.{other}").unlink(missing_ok=True)
    return version


def remove_logo(actor: str, address: str, *, instance: str | os.PathLike) -> None:
    """Stop showing the owner's logo and delete its file."""
    with db.atomic():
        Setting.delete().where(Setting.key == LOGO).execute()
        AuditLog.write(actor, "branding.logo_remove", "", address)
    folder = logo_folder(instance)
    for kind in LOGO_TYPES:
        (folder / f"logo.{kind}").unlink(missing_ok=True)


def logo_file(kind: str, instance: str | os.PathLike) -> Path | None:
    """The stored logo file of ``kind``, or None when it is missing."""
    path = logo_folder(instance) / f"logo.{kind}"
    return path if kind in LOGO_TYPES and path.is_file() else None
