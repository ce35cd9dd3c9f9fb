"""The instance folder and layered configuration."""
from __future__ import annotations

import os
import stat
from pathlib import Path

from portal.config import ensure_instance, load_settings, write_config_values


def test_instance_keys_are_private_and_never_overwritten(tmp_path):
    path = tmp_path / "inst"
    created = ensure_instance(path)
    assert set(created) == {"secret_key", "fernet.key", "callback_secret", "sms_delivery_secret"}
    for name in created:
        assert stat.S_IMODE(os.stat(path / name).st_mode) == 0o600
    before = (path / "fernet.key").read_bytes()
    assert ensure_instance(path) == []
    assert (path / "fernet.key").read_bytes() == before


def test_configuration_layers_defaults_file_environment_test(tmp_path):
    ensure_instance(tmp_path)
    assert load_settings(tmp_path, environ={})["ROUTER_PORT"] == 8728
    write_config_values(tmp_path, {"router_port": 8730, "site_name": "Mama Njeri Cafe"})
    settings = load_settings(tmp_path, environ={})
    assert settings["ROUTER_PORT"] == 8730 and settings["SITE_NAME"] == "Mama Njeri Cafe"
    settings = load_settings(tmp_path, environ={"KIBANDA_ROUTER_PORT": "8731",
                                                "KIBANDA_ROUTER_SSL": "yes"})
    assert settings["ROUTER_PORT"] == 8731 and settings["ROUTER_SSL"] is True
    settings = load_settings(tmp_path, {"ROUTER_PORT": 1}, environ={"KIBANDA_ROUTER_PORT": "8731"})
    assert settings["ROUTER_PORT"] == 1
    assert settings["DATABASE"] == str(tmp_path / "kibanda.db")
    assert len(settings["SECRET_KEY"]) == 64


def mode_of(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def database_files(folder) -> list:
    return [folder / name for name in ("kibanda.db", "kibanda.db-wal", "kibanda.db-shm")]


def test_instance_folder_and_database_files_are_private_new_and_existing(make_site, tmp_path):
    import sqlite3

    from agent.worker import Agent
    from portal.models import db
    from portal.timeutil import utcnow

    old_umask = os.umask(0o022)
    try:
        # An instance an older release left world-readable, its database open in WAL mode.
        existing = tmp_path / "instance-2"
        existing.mkdir(mode=0o755)
        older = sqlite3.connect(existing / "kibanda.db")
        older.execute("PRAGMA journal_mode=wal")
        older.execute("CREATE TABLE leftover (x)")
        older.execute("INSERT INTO leftover VALUES (1)")
        older.commit()
        assert all(mode_of(f) == 0o644 for f in database_files(existing))

        for _ in ("new", "existing"):
            site = make_site(users=True)
            folder = Path(site.app.instance_path)
            assert site.app.test_client().get("/admin/login").status_code == 200
            worker = Agent(site.app.config)
            try:
                assert worker.loop(utcnow()).ok
            finally:
                worker.close()
            db.connect(reuse_if_open=True)  # the -wal and -shm files exist while it is open
            db.execute_sql("SELECT count(*) FROM admin_user")
            assert mode_of(folder) == 0o700, folder
            for file in database_files(folder):
                assert mode_of(file) == 0o600, file
            db.close()
        older.close()
    finally:
        os.umask(old_umask)


SECRETS = {"ROUTER_PASSWORD": "ruta-siri-123", "MPESA_CONSUMER_KEY": "ck-abc-123",
           "MPESA_CONSUMER_SECRET": "cs-def-456", "MPESA_PASSKEY": "pk-bfb279f9aa9bdbcf",
           "SMS_API_KEY": "atsk_9f8e7d6c5b4a"}


def test_secrets_written_to_the_instance_are_encrypted_and_read_back(tmp_path):
    ensure_instance(tmp_path)
    write_config_values(tmp_path, {**SECRETS, "router_host": "10.5.50.1"})
    text = (tmp_path / "kibanda.toml").read_text()
    for value in SECRETS.values():
        assert value not in text
    assert 'router_host = "10.5.50.1"' in text and "router_password = " in text
    settings = load_settings(tmp_path, environ={})
    assert {name: settings[name] for name in SECRETS} == SECRETS
    # Another write (init, provision) keeps them encrypted, and readable.
    write_config_values(tmp_path, {"site_name": "Mama Njeri Cafe"})
    assert all(value not in (tmp_path / "kibanda.toml").read_text() for value in SECRETS.values())
    assert load_settings(tmp_path, environ={})["MPESA_PASSKEY"] == SECRETS["MPESA_PASSKEY"]
    # The environment still wins, as typed.
    settings = load_settings(tmp_path, environ={"KIBANDA_ROUTER_PASSWORD": "from-env"})
    assert settings["ROUTER_PASSWORD"] == "from-env"


def test_a_secret_typed_in_plain_text_works_and_kibanda_init_encrypts_it(tmp_path, kibanda):
    instance = tmp_path / "site"
    ensure_instance(instance)
    (instance / "kibanda.toml").write_text('router_password = "typed-by-hand"\n'
                                           'mpesa_passkey = "passkey-by-hand"\n')
    assert load_settings(instance, environ={})["ROUTER_PASSWORD"] == "typed-by-hand"
    result = kibanda("init", "--password", "a-long-enough-pass")
    assert result.exit_code == 0, result.output
    assert "typed-by-hand" not in result.output and "passkey-by-hand" not in result.output
    assert "router_password" in result.output  # says what it encrypted, never the value
    text = (instance / "kibanda.toml").read_text()
    assert "typed-by-hand" not in text and "passkey-by-hand" not in text
    settings = load_settings(instance, environ={})
    assert settings["ROUTER_PASSWORD"] == "typed-by-hand"
    assert settings["MPESA_PASSKEY"] == "passkey-by-hand"


def test_a_secret_encrypted_with_another_instance_key_is_named_not_shown(tmp_path):
    import pytest

    from portal.errors import ConfigurationError

    ensure_instance(tmp_path / "a")
    write_config_values(tmp_path / "a", {"router_password": "ruta-siri-123"})
    ensure_instance(tmp_path / "b")
    (tmp_path / "b" / "kibanda.toml").write_bytes((tmp_path / "a" / "kibanda.toml").read_bytes())
    with pytest.raises(ConfigurationError, match="router_password") as caught:
        load_settings(tmp_path / "b", environ={})
    assert "ruta-siri-123" not in str(caught.value)


OPEN_AT_ONCE = """
import json, sys, time
from pathlib import Path
{opener}
start = float(sys.argv[2])
time.sleep(max(0.0, start - time.time()))
settings = open_site(Path(sys.argv[1]))
from portal.models import SchemaVersion
keys = {{name: (Path(sys.argv[1]) / name).read_bytes().decode() for name in
        ("secret_key", "fernet.key", "callback_secret")}}
print(json.dumps({{"keys": keys, "versions": [row.version for row in SchemaVersion.select()]}}))
"""
PREPARE = "from portal.cli.instance import prepare_instance as open_site"


def open_fresh_instance_at_once(folder: Path, count: int, opener: str = PREPARE) -> list:
    """``count`` processes open one fresh instance at the same moment (the portal and the
    agent starting together under ``kibanda run`` or systemd); what each one saw."""
    import json
    import subprocess
    import sys
    import time

    start = time.time() + 2.0
    script = OPEN_AT_ONCE.format(opener=opener)
    procs = [subprocess.Popen([sys.executable, "-c", script, str(folder), str(start)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(count)]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err[-2000:]
        results.append(json.loads(out))
    return results


def test_processes_opening_a_fresh_instance_together_agree_on_keys_and_schema(tmp_path):
    from portal.models import SCHEMA_VERSION

    for attempt in range(3):
        folder = tmp_path / f"site{attempt}"
        seen = open_fresh_instance_at_once(folder, 6)
        on_disk = {name: (folder / name).read_bytes().decode()
                   for name in ("secret_key", "fernet.key", "callback_secret")}
        assert all(value for value in on_disk.values())
        # every process read the very key that stays on disk, never an empty or a second one
        assert all(result["keys"] == on_disk for result in seen)
        # the schema was made once: one version row, the current one
        assert all(result["versions"] == [SCHEMA_VERSION] for result in seen)
        assert sorted(p.name for p in folder.iterdir() if p.name.startswith(".")) == [".lock"]
