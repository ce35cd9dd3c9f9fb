"""Packages: validation, creation and changes, shared by the CLI, admin pages and demo."""
from __future__ import annotations

import re

from peewee import IntegrityError, fn

from ..errors import NotFound, RouterError, ValidationError
from ..models import AuditLog, Package, db, parse_id
from ..timeutil import format_duration, parse_duration, utcnow
from ..ledger import windows
from .activity import package_values

MIN_PRICE, MAX_PRICE = 1, 250_000
MIN_DEVICES, MAX_DEVICES = 1, 10
MIN_VALIDITY, MAX_VALIDITY = 60, 366 * 86400
MAX_DATA_CAP = 1000**5  # 1,000 TB: far above any package, far below SQLite's 64-bit limit
MIN_SORT, MAX_SORT = -1_000_000, 1_000_000

_RATE = r"\d+(?:\.\d+)?[kKMG]?"
_PAIR = rf"{_RATE}(?:/{_RATE})?"
_TIME = r"\d+s?"
_RATE_LIMIT = re.compile(
    rf"^{_PAIR}(?: {_PAIR}(?: {_PAIR}(?: {_TIME}(?:/{_TIME})?(?: [1-8](?: {_PAIR})?)?)?)?)?$")
_SIZE = re.compile(r"^([0-9]{1,16}(?:\.[0-9]{1,6})?)\s*([kmgt]?i?b?)?$", re.I)
_SIZE_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2,
               "g": 1000**3, "gb": 1000**3, "t": 1000**4, "tb": 1000**4,
               "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4}


def parse_rate_limit(text: str | None) -> str:
    """Check RouterOS rate-limit syntax (``2M/5M``: 2M up, 5M down); '' means no limit."""
    value = " ".join((text or "").split())
    if value and not _RATE_LIMIT.match(value):
        raise ValidationError(f"invalid rate limit {text!r}", field="rate_limit",
                              en="Speed must look like 2M/5M (upload/download), e.g. 1M/3M.",
                              sw="Kasi iandikwe kama 2M/5M (kupakia/kupakua), mfano 1M/3M.")
    return value


def parse_size(text: str | int | None) -> int | None:
    """``500MB``, ``2GB``, ``1.5G`` or a byte count to bytes; empty means no cap."""
    if text is None or text == "":
        return None
    if isinstance(text, int):
        return text if text > 0 else None
    match = _SIZE.match(str(text).strip())
    unit = (match.group(2) or "").lower() if match else None
    if not match or unit not in _SIZE_UNITS:
        raise ValidationError(f"invalid data cap {str(text)[:40]!r}", field="data_cap",
                              en="Data cap must look like 500MB or 2GB.",
                              sw="Kikomo cha data kiandikwe kama 500MB au 2GB.")
    size = int(float(match.group(1)) * _SIZE_UNITS[unit])
    if size > MAX_DATA_CAP:
        raise ValidationError(f"data cap {size} too big", field="data_cap",
                              en="Data cap must look like 500MB or 2GB (at most 1000TB).",
                              sw="Kikomo cha data kiandikwe kama 500MB au 2GB (hadi 1000TB).")
    return size if size > 0 else None


_RATE_UNITS = {"": 1, "k": 1000, "K": 1000, "M": 1000**2, "G": 1000**3}
_ONE_RATE = re.compile(r"^(\d+(?:\.\d+)?)([kKMG]?)$")


def rate_pair(rate_limit: str) -> tuple[float, float] | None:
    """Bits per second (upload, download) of a rate-limit's first pair (``2M/5M``; one
    figure is both); None for no limit."""
    first = (rate_limit or "").split(" ")[0]
    if not first:
        return None
    rx, _, tx = first.partition("/")
    figures = []
    for part in (rx, tx or rx):
        match = _ONE_RATE.match(part)
        if not match:
            return None
        figures.append(float(match.group(1)) * _RATE_UNITS[match.group(2)])
    return figures[0], figures[1]


def clean_fair_use(fair_use_rate, data_cap_bytes: int | None, rate_limit: str) -> str:
    """The speed after the data cap ('' = cut off at the cap), checked against the cap
    and the package's own speed; ValidationError in plain words otherwise."""
    text = " ".join(str(fair_use_rate or "").split())
    if not text:
        return ""
    if not _RATE_LIMIT.match(text) or min(rate_pair(text) or (0,)) <= 0:
        raise ValidationError(f"invalid fair-use rate {text[:40]!r}", field="fair_use_rate",
                              en="Slow speed must look like 256k/256k (upload/download).",
                              sw="Kasi ndogo iandikwe kama 256k/256k (kupakia/kupakua).")
    if not data_cap_bytes:
        raise ValidationError("fair-use rate without a data cap", field="fair_use_rate",
                              en="A slow speed after the cap needs a data cap. Give a data "
                                 "cap, or leave the slow speed empty.",
                              sw="Kasi ndogo baada ya kikomo inahitaji kikomo cha data. Weka "
                                 "kikomo cha data, au acha kasi ndogo wazi.")
    slow, own = rate_pair(text), rate_pair(rate_limit)
    if slow and own and (slow[0] > own[0] or slow[1] > own[1]):
        raise ValidationError(f"fair-use rate {text!r} faster than {rate_limit!r}",
                              field="fair_use_rate",
                              en=f"The slow speed after the cap must not be faster than the "
                                 f"package's own speed ({rate_limit}).",
                              sw=f"Kasi ndogo baada ya kikomo isizidi kasi ya kifurushi "
                                 f"chenyewe ({rate_limit}).")
    return text


def cap_words(package: Package) -> str:
    """The data cap in a few words: "1 GB", "1 GB, then 256k" (fair use); '' without."""
    size = format_size(package.data_cap_bytes)
    if size and package.fair_use_rate:
        return f"{size}, then {package.fair_use_rate}"
    return size


def format_size(size: int | None) -> str:
    """Bytes as a short human figure (``2 GB``, ``500 MB``)."""
    if not size:
        return ""
    for unit, factor in (("GB", 1000**3), ("MB", 1000**2), ("KB", 1000)):
        if size >= factor:
            figure = size / factor
            return f"{figure:.0f} {unit}" if figure >= 10 or figure.is_integer() else f"{figure:.1f} {unit}"
    return f"{size} B"


def whole_number(value, field: str, low: int, high: int, en: str, sw: str) -> int:
    """A whole number from a form or the CLI in ``low..high``, else ValidationError.

    At most 18 ASCII digits (and a minus sign when ``low`` is negative): Python's int()
    refuses 4,300 digits and SQLite's integers are 64-bit, so bound the text first.
    """
    text = str(value if value is not None else "").strip().replace(",", "")
    sign = "-?" if low < 0 else ""
    if not re.fullmatch(sign + r"[0-9]{1,18}", text) or not low <= int(text) <= high:
        raise ValidationError(f"{field}={str(value)[:40]!r} out of range {low}-{high}",
                              field=field, en=en, sw=sw)
    return int(text)


_DAY_WORDS = {"mon": "0", "monday": "0", "tue": "1", "tuesday": "1", "wed": "2",
              "wednesday": "2", "thu": "3", "thursday": "3", "fri": "4", "friday": "4",
              "sat": "5", "saturday": "5", "sun": "6", "sunday": "6",
              "weekend": "56", "weekends": "56", "weekdays": "01234",
              "every": "", "daily": "", "all": ""}
_HOURS = re.compile(r"^([01]?[0-9]|2[0-3])[:.h]?([0-5][0-9])\s*-\s*([01]?[0-9]|2[0-4])[:.h]?([0-5][0-9])$")


def parse_days(text) -> str:
    """``sat,sun``, ``weekend``, ``mon-fri`` or weekday digits (Mon=0) to the stored
    digits; '' is every day."""
    if isinstance(text, (list, tuple)):
        text = ",".join(str(part) for part in text)
    value = " ".join(str(text or "").lower().replace(",", " ").split())[:80]
    days: set[str] = set()
    for part in value.split(" ") if value else []:
        if part in ("mon-fri", "monday-friday"):
            days.update("01234")
        elif part in _DAY_WORDS:
            days.update(_DAY_WORDS[part] or "0123456")
        elif part.isdigit() and len(part) == 1 and part < "7":
            days.add(part)
        else:
            raise ValidationError(f"invalid days {value!r}", field="window_days",
                                  en="Days must be names like sat, sun (or weekend, mon-fri).",
                                  sw="Siku ziandikwe kama sat, sun (au weekend, mon-fri).")
    return "" if len(days) == 7 else "".join(sorted(days))


def parse_hours(text) -> tuple[int | None, int | None]:
    """``22:00-06:00`` (crossing midnight is fine) to minutes after midnight; '' is all day."""
    value = str(text or "").strip()[:40]
    if not value:
        return None, None
    match = _HOURS.match(value)
    start = int(match.group(1)) * 60 + int(match.group(2)) if match else -1
    end = int(match.group(3)) * 60 + int(match.group(4)) if match else -1
    if not match or end > 24 * 60 or start == end % (24 * 60):
        raise ValidationError(f"invalid hours {value!r}", field="window_hours",
                              en="Hours must look like 22:00-06:00 (start and end differ).",
                              sw="Saa ziandikwe kama 22:00-06:00 (mwanzo na mwisho zitofautiane).")
    return start, end % (24 * 60)


def clean_window_fields(days=None, hours=None, outside=None, validity_seconds=None) -> dict:
    """A package's time window from raw input; only what was given (None) is returned."""
    fields: dict = {}
    if days is not None:
        fields["window_days"] = parse_days(days)
    if hours is not None:
        fields["window_start"], fields["window_end"] = parse_hours(hours)
    if outside not in (None, ""):
        rule = str(outside).strip().lower()
        if rule not in windows.SALE_RULES:
            raise ValidationError(f"invalid sale rule {rule[:20]!r}", field="window_sale",
                                  en="Outside the window, choose: refuse the sale, or sell "
                                     "and start at the next opening.",
                                  sw="Nje ya muda wake, chagua: kukataa mauzo, au kuuza na "
                                     "kuanza muda unapofunguliwa.")
        fields["window_sale"] = rule
    return fields


def clean_package_fields(name_en, price, validity, name_sw="", rate_limit="", devices=1,
                         data_cap=None, sort_order=0, fair_use_rate="", days=None, hours=None,
                         outside=None) -> dict:
    """Validate raw input (strings from a form or the CLI) into Package field values.

    ``days``, ``hours`` and ``outside`` (the time window and the sale rule outside it) are
    left as they are when None."""
    name_en = (name_en or "").strip()
    if not 1 <= len(name_en) <= 60:
        raise ValidationError("package name empty or too long", field="name_en",
                              en="Give the package a name (up to 60 characters).",
                              sw="Kipe kifurushi jina (hadi herufi 60).")
    price = whole_number(price, "price", MIN_PRICE, MAX_PRICE,
                          en=f"Price must be a whole number of shillings from {MIN_PRICE} to {MAX_PRICE:,}.",
                          sw=f"Bei iwe shilingi nzima kati ya {MIN_PRICE} na {MAX_PRICE:,}.")
    try:
        seconds = parse_duration(validity)
    except ValueError:
        seconds = -1
    if not MIN_VALIDITY <= seconds <= MAX_VALIDITY:
        raise ValidationError(f"invalid validity {validity!r}", field="validity",
                              en="Validity must look like 1h, 1d, 7d or 30d (1 minute to 1 year).",
                              sw="Muda uandikwe kama 1h, 1d, 7d au 30d (dakika 1 hadi mwaka 1).")
    devices = whole_number(devices, "devices", MIN_DEVICES, MAX_DEVICES,
                            en=f"Devices must be from {MIN_DEVICES} to {MAX_DEVICES}.",
                            sw=f"Idadi ya vifaa iwe kati ya {MIN_DEVICES} na {MAX_DEVICES}.")
    rate_limit = parse_rate_limit(rate_limit)
    data_cap_bytes = parse_size(data_cap)
    return {
        **clean_window_fields(days, hours, outside),
        "name_en": name_en,
        "name_sw": (name_sw or "").strip()[:60],
        "price": price,
        "validity_seconds": seconds,
        "rate_limit": rate_limit,
        "devices": devices,
        "data_cap_bytes": data_cap_bytes,
        "fair_use_rate": clean_fair_use(fair_use_rate, data_cap_bytes, rate_limit),
        "sort_order": whole_number(
            sort_order if sort_order not in (None, "") else 0, "sort_order", MIN_SORT, MAX_SORT,
            en=f"The order must be a whole number from {MIN_SORT:,} to {MAX_SORT:,}.",
            sw=f"Mpangilio uwe namba nzima kati ya {MIN_SORT:,} na {MAX_SORT:,}."),
    }


def profile_name_for(name_en: str) -> str:
    """A router profile name derived from the package name: ``kb-1-hour``."""
    slug = re.sub(r"[^a-z0-9]+", "-", name_en.lower()).strip("-")[:40] or "package"
    return f"kb-{slug}"


def _name_taken(name_en: str, other_than: int | None = None) -> ValidationError | None:
    """The error for a name another package holds (any case), after an IntegrityError."""
    query = Package.select().where(fn.LOWER(Package.name_en) == name_en.lower())
    if other_than is not None:
        query = query.where(Package.id != other_than)
    if not query.exists():
        return None
    return ValidationError(f"package name {name_en!r} taken", field="name_en",
                           en=f"There is already a package called {name_en}. Choose another "
                              f"name, or change that package.",
                           sw=f"Tayari kuna kifurushi kinachoitwa {name_en}. Chagua jina "
                              f"lingine, au badilisha kifurushi hicho.")


def create_package(actor: str = "system", address: str = "", **raw) -> Package:
    """Validate and create a package (unique name, whatever its case, and unique profile
    name); audit-logged."""
    fields = clean_package_fields(**raw)
    base = profile_name_for(fields["name_en"])
    with db.atomic():
        for attempt in range(1, 50):
            name = base if attempt == 1 else f"{base}-{attempt}"
            try:
                with db.atomic():
                    package = Package.create(profile_name=name, **fields)
                break
            except IntegrityError as exc:
                taken = _name_taken(fields["name_en"])
                if taken is not None:
                    raise taken from exc
                continue
        else:
            raise ValidationError("no free profile name", field="name_en",
                                  en="Choose a different package name.",
                                  sw="Chagua jina lingine la kifurushi.")
        AuditLog.write(actor, "package.create", describe(package), address,
                       **package_values(package))
    return package


def update_package(package_id: int, actor: str = "system", address: str = "", **raw) -> Package:
    """Validate and change a package; the router profile keeps its name."""
    package = Package.get_or_none(Package.id == package_id)
    if package is None:
        raise NotFound(f"package {package_id}")
    fields = clean_package_fields(**raw)
    try:
        with db.atomic():
            for key, value in fields.items():
                setattr(package, key, value)
            package.updated_at = utcnow()
            package.router_synced_at = None
            package.save()
            AuditLog.write(actor, "package.update", describe(package), address,
                           **package_values(package))
    except IntegrityError as exc:
        taken = _name_taken(fields["name_en"], other_than=package.id)
        if taken is not None:
            raise taken from exc
        raise
    return package


def set_package_active(package_id: int, active: bool, actor: str = "system",
                       address: str = "") -> Package:
    """Retire (or bring back) a package; retired ones are not sold but keep their history."""
    package = Package.get_or_none(Package.id == package_id)
    if package is None:
        raise NotFound(f"package {package_id}")
    with db.atomic():
        package.active = active
        package.updated_at = utcnow()
        package.save()
        AuditLog.write(actor, "package.activate" if active else "package.retire",
                       describe(package), address, **package_values(package))
    return package


def find_package(name_or_id: str) -> Package:
    """A package by id, English name or profile name (for the CLI)."""
    text = str(name_or_id).strip()
    query = Package.select().where((fn.LOWER(Package.name_en) == text.lower())
                                   | (Package.profile_name == text))
    if parse_id(text) is not None:
        query = Package.select().where(Package.id == parse_id(text)) | query
    package = query.first()
    if package is None:
        raise NotFound(f"no package named {text!r}", en=f"No package named {text}.",
                       sw=f"Hakuna kifurushi kinachoitwa {text}.")
    return package


def describe(package: Package) -> str:
    """One line for logs and the CLI."""
    parts = [f"#{package.id} {package.name_en}", f"KES {package.price}",
             format_duration(package.validity_seconds)]
    if package.rate_limit:
        parts.append(package.rate_limit)
    parts.append(f"{package.devices} device{'s' if package.devices != 1 else ''}")
    if package.data_cap_bytes:
        parts.append(cap_words(package))
    if windows.windowed(package):
        parts.append(windows.window_words(package, "en")
                     + (", sold ahead" if package.window_sale == windows.WAIT else ""))
    if not package.active:
        parts.append("retired")
    return ", ".join(parts)


def sync_profile(package: Package, gateway) -> bool:
    """Push a package to its router user profile; record success or the router's error."""
    try:
        gateway.ensure_profile(package)
    except RouterError as exc:
        Package.update(router_error=exc.operator_message).where(Package.id == package.id).execute()
        package.router_error = exc.operator_message
        return False
    now = utcnow()
    Package.update(router_synced_at=now, router_error=None).where(Package.id == package.id).execute()
    package.router_synced_at, package.router_error = now, None
    return True


DEMO_PACKAGES = [
    dict(name_en="1 hour", name_sw="Saa 1", price=10, validity="1h", rate_limit="2M/5M", devices=1),
    dict(name_en="1 day", name_sw="Siku 1", price=50, validity="1d", rate_limit="2M/5M", devices=1),
    dict(name_en="1 week", name_sw="Wiki 1", price=250, validity="7d", rate_limit="3M/8M", devices=2),
    dict(name_en="1 month", name_sw="Mwezi 1", price=800, validity="30d", rate_limit="5M/10M", devices=3),
]
