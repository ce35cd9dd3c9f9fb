"""The instance folder, layered configuration, the schema and `kibanda init`."""
from __future__ import annotations

import os
import stat

import pytest
from click.testing import CliRunner
from peewee import IntegrityError

from portal.cli import main
from portal.config import ensure_instance, load_settings, write_config_values
from portal.crypto import check_password, hash_password
from portal.models import (AdminUser, Grant, Package, Purchase, Setting, Voucher,
                           VoucherBatch, create_schema, db, init_db)
from portal.venue.settings import get_setting, set_setting
from portal.timeutil import format_duration, nairobi_timestamp, parse_duration


def test_instance_keys_are_private_and_never_overwritten(tmp_path):
    path = tmp_path / "inst"
    created = ensure_instance(path)
    assert set(created) == {"secret_key", "fernet.key", "callback_secret"}
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


def test_kibanda_init_without_terminal_generates_owner_password_once(tmp_path):
    runner = CliRunner()
    inst = tmp_path / "site"
    result = runner.invoke(main, ["--instance", str(inst), "init"])
    assert result.exit_code == 0, result.output
    assert "password:" in result.output
    password = result.output.split("password:")[1].split()[0]
    init_db(str(inst / "kibanda.db"))
    with db.connection_context():
        owner = AdminUser.get(AdminUser.username == "owner")
        assert check_password(owner.password_hash, password)
    key = (inst / "fernet.key").read_bytes()
    again = runner.invoke(main, ["--instance", str(inst), "init"])
    assert again.exit_code == 0
    assert "already exists" in again.output and "password:" not in again.output
    assert (inst / "fernet.key").read_bytes() == key


def test_kibanda_init_with_flags_uses_the_given_password(tmp_path):
    inst = tmp_path / "site"
    result = CliRunner().invoke(main, ["--instance", str(inst), "init", "--owner", "wanjiku",
                                       "--password", "a-long-enough-pass"])
    assert result.exit_code == 0, result.output
    assert "a-long-enough-pass" not in result.output
    init_db(str(inst / "kibanda.db"))
    with db.connection_context():
        assert check_password(AdminUser.get().password_hash, "a-long-enough-pass")


@pytest.fixture
def database(tmp_path):
    init_db(str(tmp_path / "k.db"))
    create_schema()
    db.connect(reuse_if_open=True)
    yield db
    db.close()


def _package(**kw):
    values = dict(name_en="1 hour", price=10, validity_seconds=3600, profile_name="kb-1h")
    values.update(kw)
    return Package.create(**values)


def test_database_runs_in_wal_with_foreign_keys(database):
    assert database.execute_sql("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert database.execute_sql("PRAGMA foreign_keys").fetchone()[0] == 1
    assert database.execute_sql("PRAGMA busy_timeout").fetchone()[0] == 5000


def test_unique_constraints_hold(database):
    package = _package()
    Purchase.create(phone="254708374149", package=package, amount=10,
                    checkout_request_id="ws_CO_1", receipt="NLJ7RT61SV")
    with pytest.raises(IntegrityError), database.atomic():
        Purchase.create(phone="254708374149", package=package, amount=10,
                        checkout_request_id="ws_CO_1")
    with pytest.raises(IntegrityError), database.atomic():
        Purchase.create(phone="254708374149", package=package, amount=10,
                        checkout_request_id="ws_CO_2", receipt="NLJ7RT61SV")
    batch = VoucherBatch.create(package=package, count=1, created_by="owner")
    Voucher.create(code="123456", batch=batch, package=package)
    with pytest.raises(IntegrityError), database.atomic():
        Voucher.create(code="123456", batch=batch, package=package)
    from datetime import datetime
    Grant.create(username="123456", password="x", package=package, source="voucher",
                 expires_at=datetime(2030, 1, 1))
    with pytest.raises(IntegrityError), database.atomic():
        Grant.create(username="123456", password="y", package=package, source="manual",
                     expires_at=datetime(2030, 1, 1))


def test_secret_settings_are_encrypted_at_rest(database):
    from cryptography.fernet import Fernet
    key = Fernet.generate_key()
    set_setting("mpesa_passkey", "bfb279f9aa9bdbcf", key, secret=True)
    stored = Setting.get(Setting.key == "mpesa_passkey").value
    assert "bfb279f9aa9bdbcf" not in stored
    assert get_setting("mpesa_passkey", key) == "bfb279f9aa9bdbcf"
    with pytest.raises(ValueError):
        get_setting("mpesa_passkey", Fernet.generate_key())


def test_password_hashes_are_scrypt_and_salted():
    first, second = hash_password("same password"), hash_password("same password")
    assert first.startswith("scrypt$") and first != second
    assert check_password(first, "same password") and not check_password(first, "other")


def test_durations_and_nairobi_timestamp():
    from datetime import datetime
    assert parse_duration("1d2h") == 93600 and parse_duration("00:30:00") == 1800
    assert parse_duration("3600") == 3600 and format_duration(698215) == "1w1d1h56m55s"
    with pytest.raises(ValueError):
        parse_duration("soon")
    assert nairobi_timestamp(datetime(2021, 6, 28, 6, 24, 8)) == "20210628092408"


def test_schema_migrations_run_once_in_order(tmp_path):
    """A later release adds a column through playhouse.migrate; old data stays."""
    from peewee import CharField
    from playhouse.migrate import migrate

    from portal import models

    init_db(str(tmp_path / "old.db"))
    assert create_schema() == models.SCHEMA_VERSION
    with db.connection_context():
        Package.create(name_en="1 hour", price=10, validity_seconds=3600, profile_name="kb-1h")
    calls = []

    def add_colour(migrator):
        calls.append("v2")
        migrate(migrator.add_column("package", "colour", CharField(default="green")))

    models.MIGRATIONS[models.SCHEMA_VERSION + 1] = add_colour
    try:
        assert create_schema() == models.SCHEMA_VERSION + 1
        assert create_schema() == models.SCHEMA_VERSION + 1
    finally:
        del models.MIGRATIONS[models.SCHEMA_VERSION + 1]
    assert calls == ["v2"]
    with db.connection_context():
        row = db.execute_sql("SELECT name_en, colour FROM package").fetchone()
    assert row == ("1 hour", "green")
