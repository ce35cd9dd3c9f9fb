"""Layered configuration: defaults, then the instance file, then ``KIBANDA_*``, then tests.

The instance folder (``KIBANDA_INSTANCE``, default ``./instance``) holds the database,
``kibanda.toml`` (settings a technician edits) and the key files, created with mode 0600.
Every setting can be overridden by ``KIBANDA_<NAME>``, e.g. ``KIBANDA_ROUTER_HOST``.

The secrets in ``kibanda.toml`` (``SECRET_SETTINGS``) are stored encrypted with the
instance's ``fernet.key`` as ``"fernet:<token>"``; a value a technician typed in plain text
still works, and the next write of the file (``kibanda init`` does one) encrypts it.
"""
from __future__ import annotations

import fcntl
import os
import secrets
import tomllib
from contextlib import contextmanager
from pathlib import Path

from cryptography.fernet import Fernet

from .crypto import decrypt, encrypt
from .errors import ConfigurationError

DEFAULTS: dict[str, object] = {
    # The site
    "SITE_NAME": "Kibanda WiFi",
    "SITE_ID": "",
    "SITE_LOGO_URL": "",
    "PRIMARY_COLOR": "#0a7d4f",
    "SUPPORT_PHONE": "",
    "PORTAL_URL": "http://127.0.0.1:8080",
    "DEFAULT_LANGUAGE": "en",
    "DATABASE": "kibanda.db",
    # The router
    "ROUTER_NAME": "router",
    "ROUTER_HOST": "192.168.88.1",
    "ROUTER_PORT": 8728,
    "ROUTER_USER": "portal",
    "ROUTER_PASSWORD": "",
    "ROUTER_SSL": False,
    "ROUTER_TIMEOUT": 5.0,
    "ROUTER_LOGIN_METHOD": "plain",
    "HOTSPOT_SERVER": "hotspot1",
    "HOTSPOT_DNS_NAME": "wifi.kibanda.lan",
    # The WiFi network's name (SSID) printed on voucher cards; the owner can change it on
    # the Branding page. Empty: the cards do not name the network.
    "WIFI_NAME": "",
    # The hotspot's gateway address(es) on the router, e.g. 10.5.50.1 (comma-separated).
    "HOTSPOT_ADDRESS": "",
    # M-Pesa (Daraja)
    "MPESA_BASE_URL": "https://sandbox.safaricom.co.ke",
    "MPESA_CONSUMER_KEY": "",
    "MPESA_CONSUMER_SECRET": "",
    "MPESA_SHORTCODE": "174379",
    "MPESA_PASSKEY": "",
    "MPESA_TYPE": "paybill",
    "MPESA_PARTYB": "",
    "MPESA_MIN_AMOUNT": 1,
    "MPESA_MAX_AMOUNT": 250000,
    "MPESA_CONNECT_TIMEOUT": 5.0,
    "MPESA_READ_TIMEOUT": 30.0,
    # The STK prompt's AccountReference; empty: each purchase's own account code.
    "MPESA_ACCOUNT_REFERENCE": "",
    "CALLBACK_BASE_URL": "",
    "CALLBACK_ALLOWED_IPS": "",
    # Paying from the M-Pesa menu (C2B): validation refuses PayBill accounts that are no
    # purchase's code (off: a customer who paid "WIFI" still gets a sale by the amount).
    "C2B_REJECT_UNKNOWN_ACCOUNTS": False,
    # Pull Transactions: the number nominated for the shortcode on the M-Pesa portal
    # (empty: the agent does not pull), and minutes between pulls.
    "MPESA_PULL_NOMINATED_NUMBER": "",
    "MPESA_PULL_EVERY_MINUTES": 5,
    # Transaction Status (optional; many venues have none): the API initiator's name and
    # its SecurityCredential (the initiator password encrypted with Safaricom's
    # certificate, as the Daraja portal makes it). Stored encrypted in kibanda.toml.
    "MPESA_INITIATOR_NAME": "",
    "MPESA_SECURITY_CREDENTIAL": "",
    # Days a received M-Pesa callback is kept for review before the agent deletes it.
    "CALLBACK_RETENTION_DAYS": 90,
    # The agent: seconds between reads of the router's users and sessions (track and
    # reconcile), and between heartbeats (/healthz?require=agent: stale after 3 of them).
    "AGENT_ROUTER_CHECK_SECONDS": 30,
    "AGENT_HEARTBEAT_SECONDS": 300,
    # Upstream sync (kibanda enroll writes UPSTREAM_URL, SITE_ID and UPSTREAM_KEY_ID)
    "UPSTREAM_URL": "",
    "UPSTREAM_KEY_ID": "",
    # M-Pesa posts to the hub's relay (this site has no public address); the agent fetches.
    "MPESA_RELAY": False,
    # SMS (Africa's Talking): receipts, reminders, the owner's summary and alerts. No
    # username or API key: SMS is off. SMS_BASE_URL empty: the live API, or the sandbox
    # for the username "sandbox". SMS_SENDER_ID: a registered sender id or shortcode
    # (empty: Africa's Talking's default). The owner is alerted when the router or the
    # internet link has been down this many minutes.
    "SMS_USERNAME": "",
    "SMS_API_KEY": "",
    "SMS_SENDER_ID": "",
    "SMS_BASE_URL": "",
    "SMS_ALERT_AFTER_MINUTES": 15,
}

SECRET_FILES = {
    "SECRET_KEY": "secret_key",
    "FERNET_KEY": "fernet.key",
    "CALLBACK_SECRET": "callback_secret",
    "SMS_DELIVERY_SECRET": "sms_delivery_secret",
}
CONFIG_FILE = "kibanda.toml"
#: Settings stored encrypted in kibanda.toml (environment variables stay as they are).
SECRET_SETTINGS = ("ROUTER_PASSWORD", "MPESA_CONSUMER_KEY", "MPESA_CONSUMER_SECRET",
                   "MPESA_PASSKEY", "MPESA_SECURITY_CREDENTIAL", "SMS_API_KEY")
ENCRYPTED_PREFIX = "fernet:"


def instance_path(explicit: str | os.PathLike | None = None) -> Path:
    """The instance folder: explicit, else ``KIBANDA_INSTANCE``, else ``./instance``."""
    return Path(explicit or os.environ.get("KIBANDA_INSTANCE") or "instance").resolve()


def _write_private(path: Path, content: bytes) -> bool:
    """Create ``path`` with mode 0600 holding ``content``; never overwrite. Returns True if
    it was created.

    Written in full to a private temporary file first, then linked into place: another
    process opening the instance at the same moment sees the whole key or no key, never
    an empty file it would take for the key.
    """
    if path.exists():
        return False
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            return False
        return True
    finally:
        temporary.unlink(missing_ok=True)


@contextmanager
def instance_lock(path: Path):
    """Hold the instance's lock file while it is created, opened and migrated.

    The portal and the agent start together (``kibanda run``, or two systemd units on a
    fresh box): without it both would create keys and tables and run migrations at once.
    """
    path = Path(path)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def ensure_instance(path: Path) -> list[str]:
    """Create the instance folder (mode 0700) and any missing key file; return the names created."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    # The folder holds the database, the keys and the settings: its owner only, also for
    # a folder an older release made (or a technician made by hand).
    os.chmod(path, 0o700)
    created = []
    generators = {
        "secret_key": lambda: secrets.token_hex(32).encode(),
        "fernet.key": Fernet.generate_key,
        "callback_secret": lambda: secrets.token_urlsafe(24).encode(),
        "sms_delivery_secret": lambda: secrets.token_urlsafe(24).encode(),
    }
    for filename, make in generators.items():
        if _write_private(path / filename, make()):
            created.append(filename)
    return created


def _coerce(name: str, raw: object) -> object:
    """Give an override the type of its default (env values arrive as strings)."""
    default = DEFAULTS.get(name)
    if not isinstance(raw, str):
        return raw
    if isinstance(default, bool):
        return raw.strip().lower() in {"1", "true", "yes", "on"}
    if isinstance(default, int):
        return int(raw)
    if isinstance(default, float):
        return float(raw)
    return raw


def read_config_file(path: Path) -> dict[str, object]:
    """Read ``kibanda.toml`` (flat ``key = value``; names case-insensitive)."""
    file = path / CONFIG_FILE
    if not file.exists():
        return {}
    with file.open("rb") as handle:
        data = tomllib.load(handle)
    return {str(k).upper(): v for k, v in data.items()}


def _instance_key(path: Path, environ=None) -> bytes | None:
    """The instance's Fernet key (``KIBANDA_FERNET_KEY`` first, then ``fernet.key``)."""
    environ = os.environ if environ is None else environ
    if environ.get("KIBANDA_FERNET_KEY"):
        return environ["KIBANDA_FERNET_KEY"].encode()
    file = path / SECRET_FILES["FERNET_KEY"]
    return file.read_bytes().strip() if file.exists() else None


def _plain_secrets(values: dict[str, object]) -> list[str]:
    """Names of the secret settings in ``values`` that are not encrypted yet."""
    return [name for name in SECRET_SETTINGS
            if isinstance(values.get(name), str) and values[name]
            and not str(values[name]).startswith(ENCRYPTED_PREFIX)]


def _decrypt_secrets(path: Path, values: dict[str, object], environ) -> None:
    """Decrypt, in place, the encrypted secrets read from kibanda.toml."""
    encrypted = [name for name in SECRET_SETTINGS
                 if str(values.get(name) or "").startswith(ENCRYPTED_PREFIX)]
    key = _instance_key(path, environ) if encrypted else None
    for name in encrypted:
        try:
            if key is None:
                raise ValueError("no fernet.key")
            values[name] = decrypt(key, str(values[name])[len(ENCRYPTED_PREFIX):])
        except ValueError as exc:
            # Name the setting, never its value.
            raise ConfigurationError(
                f"{CONFIG_FILE}: {name.lower()} was encrypted with another fernet.key "
                f"(was the file copied from another site?). Type it again in plain text, "
                f"then run `kibanda init` to encrypt it with this site's key") from exc


def write_config_values(path: Path, values: dict[str, object]) -> list[str]:
    """Merge ``values`` into ``kibanda.toml`` (used by init, provision and enroll).

    Every secret in the file ends up encrypted with the instance's Fernet key, also one a
    technician typed there in plain text; returns the names of the secrets it encrypted.
    """
    current = read_config_file(path)
    current.update({k.upper(): v for k, v in values.items()})
    plain = _plain_secrets(current)
    if plain:
        ensure_instance(path)
        key = _instance_key(path)
        for name in plain:
            current[name] = ENCRYPTED_PREFIX + encrypt(key, str(current[name]))
    lines = ["# Kibanda site settings. KIBANDA_<NAME> environment variables override these."]
    for key in sorted(current):
        value = current[key]
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, (int, float)):
            text = str(value)
        else:
            text = '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
        lines.append(f"{key.lower()} = {text}")
    tmp = path / (CONFIG_FILE + ".tmp")
    tmp.unlink(missing_ok=True)
    # Created 0600: never readable by others, not even for the moment before a chmod.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    os.replace(tmp, path / CONFIG_FILE)
    return [name.lower() for name in plain]


def encrypt_config_secrets(path: Path) -> list[str]:
    """Encrypt the secrets typed into kibanda.toml in plain text; returns their names."""
    if not _plain_secrets(read_config_file(path)):
        return []
    return write_config_values(path, {})


def load_settings(path: Path, test_config: dict | None = None,
                  environ: dict | None = None) -> dict[str, object]:
    """Defaults, then the instance file, then ``KIBANDA_*`` variables, then ``test_config``."""
    environ = os.environ if environ is None else environ
    settings: dict[str, object] = dict(DEFAULTS)
    from_file = read_config_file(path)
    _decrypt_secrets(path, from_file, environ)
    for name, value in from_file.items():
        settings[name] = _coerce(name, value)
    for key, value in environ.items():
        if key.startswith("KIBANDA_") and key != "KIBANDA_INSTANCE":
            name = key[len("KIBANDA_"):]
            settings[name] = _coerce(name, value)
    for name, filename in SECRET_FILES.items():
        if name not in settings or not settings[name]:
            file = path / filename
            if file.exists():
                settings[name] = file.read_text().strip()
    settings["INSTANCE_PATH"] = str(path)
    if test_config:
        settings.update(test_config)
    database = str(settings["DATABASE"])
    if database != ":memory:" and not os.path.isabs(database):
        settings["DATABASE"] = str(path / database)
    if not settings.get("SITE_ID"):
        settings["SITE_ID"] = "site-" + str(settings["SITE_NAME"]).lower().replace(" ", "-")[:40]
    return settings
