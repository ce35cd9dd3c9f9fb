"""The free trial's settings (owner's choice): how many minutes, and the package whose
speed and devices it uses. Off when the minutes are 0. The trial itself is
``portal/ledger/trials.py``."""
from __future__ import annotations

from ..errors import ValidationError
from ..ledger import trials
from ..models import AuditLog, Package, Setting, db
from .packages import whole_number
from .settings import set_setting


def trial_settings() -> dict:
    """``{"minutes": int, "package_id": int | None}`` as stored (minutes 0: off)."""
    minutes = Setting.get_or_none(Setting.key == trials.MINUTES_KEY)
    package = Setting.get_or_none(Setting.key == trials.PACKAGE_KEY)
    return {"minutes": int(minutes.value) if minutes and minutes.value.isdigit() else 0,
            "package_id": int(package.value) if package and package.value.isdigit() else None}


def save_trial(actor: str, address: str, *, minutes, package_id) -> None:
    """Turn the free trial on (minutes 1 to 1440, a package on sale) or off (0 or empty)."""
    minutes = whole_number(minutes if str(minutes or "").strip() else 0, "trial_minutes", 0,
                           trials.MAX_MINUTES,
                           en=f"Free minutes must be a whole number from 0 (off) to {trials.MAX_MINUTES}.",
                           sw=f"Dakika za bure ziwe namba nzima kati ya 0 (imezimwa) na {trials.MAX_MINUTES}.")
    package = None
    if minutes:
        text = str(package_id or "").strip()
        package = Package.get_or_none(Package.id == int(text)) if text.isdigit() and \
            len(text) <= 9 else None
        if package is None or not package.active:
            raise ValidationError("no trial package", field="trial_package",
                                  en="Choose the package whose speed the free trial uses.",
                                  sw="Chagua kifurushi ambacho kasi yake itatumika kwa majaribio ya bure.")
    with db.atomic():
        set_setting(trials.MINUTES_KEY, str(minutes))
        set_setting(trials.PACKAGE_KEY, str(package.id) if package else "")
        if package is not None:
            AuditLog.write(actor, "trial.on", f"{minutes} minutes at {package.name_en}", address,
                           minutes=minutes, name=package.name_en, name_sw=package.name_sw)
        else:
            AuditLog.write(actor, "trial.off", "free trial off", address)
