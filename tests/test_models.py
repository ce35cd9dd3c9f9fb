"""The schema: SQLite in WAL with foreign keys, unique constraints, migrations run once."""
from __future__ import annotations

import pytest
from peewee import IntegrityError

from portal.models import (Grant, Package, Purchase, Voucher, VoucherBatch, create_schema, db,
                           init_db)


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
