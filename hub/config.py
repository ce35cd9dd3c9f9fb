"""The hub's settings: defaults, then ``KIBANDA_HUB_*`` environment variables, then tests.

The hub's instance folder (``KIBANDA_HUB_INSTANCE``, default ``./hub-instance``, mode 0700)
holds ``secret_key`` (0600, made on first run) and, on SQLite, ``hub.db`` (0600).
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path

HUB_DEFAULTS: dict[str, object] = {
    # "" = SQLite in the instance folder; postgresql://user:pass@host:5432/name for many sites.
    "HUB_DATABASE_URL": "",
    # Bearer token for GET /v1/sites; unset = that endpoint answers 503.
    "HUB_OPERATOR_TOKEN": "",
    # Keep each worker thread's database connection between requests (kibanda hub sets it).
    "HUB_KEEP_OPEN": False,
    # Cookies only over HTTPS: on by default, off for a hub tried on http://localhost.
    "SESSION_COOKIE_SECURE": True,
}


def hub_instance_path(explicit: str | os.PathLike | None = None) -> Path:
    """The hub's folder: explicit, else ``KIBANDA_HUB_INSTANCE``, else ``./hub-instance``."""
    return Path(explicit or os.environ.get("KIBANDA_HUB_INSTANCE") or "hub-instance").resolve()


def ensure_hub_instance(path: Path) -> None:
    """Create the folder (0700) and its ``secret_key`` (0600) if missing."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    try:
        fd = os.open(path / "secret_key", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_hex(32))


def load_hub_settings(path: Path, test_config: dict | None = None, environ=None) -> dict:
    """The layered settings of the hub in ``path``."""
    environ = os.environ if environ is None else environ
    settings = dict(HUB_DEFAULTS)
    for name, default in HUB_DEFAULTS.items():
        raw = environ.get(f"KIBANDA_{name}")
        if raw is not None:
            settings[name] = (raw.strip().lower() in {"1", "true", "yes", "on"}
                              if isinstance(default, bool) else raw)
    settings["SECRET_KEY"] = (path / "secret_key").read_text().strip()
    settings.update(test_config or {})
    return settings
