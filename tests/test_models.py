"""The schema: SQLite in WAL with foreign keys, unique constraints, migrations run once."""
from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from peewee import IntegrityError

from portal import models
from portal.models import (AdminUser, Grant, Package, Purchase, SchemaVersion, Voucher,
                           VoucherBatch, create_schema, db, init_db)


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


# -- schema v1 to v2: a site's existing database gets explicit purchase states ----------

T = datetime(2026, 11, 30, 18, 0, 0)


def make_v1_database(path) -> None:
    """The tables as release 1 left them: Purchase.language, no last_query_at, no jobs, no
    purchase references, no data used on grants."""
    init_db(str(path))
    create_schema()
    with db.connection_context():
        db.execute_sql("DROP TABLE job")
        db.execute_sql("ALTER TABLE purchase DROP COLUMN last_query_at")
        db.execute_sql("DROP INDEX purchase_reference")
        db.execute_sql("ALTER TABLE purchase DROP COLUMN reference")
        # Purchase.language is there already: today's column has release 1's shape.
        db.execute_sql('ALTER TABLE "grant" DROP COLUMN bytes_used')
        SchemaVersion.delete().execute()
        SchemaVersion.create(version=1)
        package = Package.create(name_en="1 hour", price=20, validity_seconds=3600,
                                 profile_name="kb-1-hour")
        rows = [
            # (status, checkout id, result_desc, query attempts, next query)
            ("pending", None, None, 0, None),                       # push in flight
            ("pending", None, "push timed out: no answer in 30s", 0, None),
            ("pending", "ws_CO_1", None, 2, T),                     # asked twice
            ("review", None, "push timed out: no answer in 30s", 0, None),
            ("paid", "ws_CO_2", "The service request is processed successfully.", 1, None),
        ]
        for status, checkout, desc, attempts, next_query in rows:
            db.execute_sql(
                "INSERT INTO purchase (phone, package_id, amount, mac, ip, link_login_only, "
                "link_orig, language, checkout_request_id, status, result_desc, created_at, "
                "updated_at, query_attempts, next_query_at) VALUES "
                "('254708374149', ?, 20, '', '', '', '', 'sw', ?, ?, ?, ?, ?, ?, ?)",
                (package.id, checkout, status, desc, T, T, attempts, next_query))


def test_v1_database_is_migrated_to_explicit_states_and_keeps_every_sale(tmp_path):
    make_v1_database(tmp_path / "kibanda.db")
    assert create_schema() == models.SCHEMA_VERSION >= 2
    with db.connection_context():
        columns = {c.name for c in db.get_columns("purchase")}
        assert "last_query_at" in columns
        # v2 dropped v1's never-read language; v17 brings one back for SMS receipts, and
        # every older purchase reads as English.
        assert {p.language for p in Purchase.select()} == {"en"}
        assert db.table_exists("sms_message")
        got = [(p.status, p.checkout_request_id, p.last_query_at)
               for p in Purchase.select().order_by(Purchase.id)]
        assert got == [
            (Purchase.PUSHING, None, None),
            (Purchase.UNANSWERED, None, None),
            (Purchase.PENDING, "ws_CO_1", T - timedelta(seconds=20)),
            (Purchase.REVIEW, None, None),
            (Purchase.PAID, "ws_CO_2", None),
        ]
        # The review note a person reads is kept as it was.
        assert Purchase.select().where(Purchase.status == Purchase.REVIEW).get().result_desc \
            == "push timed out: no answer in 30s"
        assert db.table_exists("job")
        # Every purchase gets its opaque reference (its page's URL, its CallBackURL).
        references = [p.reference for p in Purchase.select()]
        assert len(set(references)) == 5 and all(len(r) >= 16 for r in references)
    # Once is enough: a second start changes nothing.
    assert create_schema() == models.SCHEMA_VERSION
    with db.connection_context():
        # Each migration once, in order (on a branch the numbers may have gaps).
        assert [v.version for v in SchemaVersion.select().order_by(SchemaVersion.id)] == [
            1, *sorted(v for v in models.MIGRATIONS if v > 1)]
        assert Purchase.select().count() == 5


# -- schema v4: the limits' keys (the request's address, a confirmed device) --------------

V4_COLUMNS = [("code_attempt", "source"), ("purchase", "source"), ("purchase", "verified")]


def test_v1_database_gets_the_limit_columns_once(tmp_path):
    from playhouse.migrate import SqliteMigrator

    make_v1_database(tmp_path / "kibanda.db")
    with db.connection_context():
        for table, column in V4_COLUMNS:  # release 1 had none of them
            db.execute_sql(f"ALTER TABLE {table} DROP COLUMN {column}")
        db.execute_sql("INSERT INTO code_attempt (device, at, ok) VALUES ('AA:BB', ?, 0)", (T,))
    assert create_schema() == models.SCHEMA_VERSION >= 4
    with db.connection_context():
        for table, column in V4_COLUMNS:
            assert column in {c.name for c in db.get_columns(table)}, (table, column)
        assert [(p.source, p.verified) for p in Purchase.select()] == [("", False)] * 5
        assert db.execute_sql("SELECT device, source FROM code_attempt").fetchall() == [
            ("AA:BB", "")]
        # Safe to run again (another branch's migration may have added a column first).
        models.MIGRATIONS[4](SqliteMigrator(db))
        assert Purchase.select().count() == 5


def test_v2_database_gets_admin_session_versions_and_keeps_its_accounts(tmp_path):
    make_v1_database(tmp_path / "kibanda.db")
    with db.connection_context():
        db.execute_sql("ALTER TABLE admin_user DROP COLUMN session_version")
        db.execute_sql("INSERT INTO admin_user (username, password_hash, role, created_at) "
                       "VALUES ('mama', 'scrypt$x', 'owner', ?)", (T,))
    assert create_schema() == models.SCHEMA_VERSION >= 3
    with db.connection_context():
        assert "session_version" in {c.name for c in db.get_columns("admin_user")}
        assert [(u.username, u.session_version) for u in AdminUser.select()] == [("mama", 0)]


def insert_old_grant(**extra) -> None:
    """A grant row as an older release wrote it (only the columns it had, and ``extra``)."""
    columns = {"username": "48213377", "password": "48213377", "package_id": 1,
               "source": "voucher", "expires_at": T, "router_state": "on_router",
               "router_attempts": 0, "login_mac": "", "login_ip": "", "created_at": T,
               "created_by": "", "note": "", **extra}
    db.execute_sql(f'INSERT INTO "grant" ({", ".join(columns)}) '
                   f'VALUES ({", ".join("?" * len(columns))})', tuple(columns.values()))


def test_grants_of_an_older_database_get_data_used_unknown(tmp_path):
    make_v1_database(tmp_path / "kibanda.db")
    with db.connection_context():
        insert_old_grant()
    assert create_schema() == models.SCHEMA_VERSION >= 8
    with db.connection_context():
        assert [(g.username, g.bytes_used) for g in Grant.select()] == [("48213377", None)]


# -- schema v12 and v13: disabled accounts, free-access keys, unique package names ---------

def test_v5_database_gets_disabled_accounts_grant_keys_and_unique_package_names(tmp_path):
    from playhouse.migrate import SqliteMigrator

    make_v1_database(tmp_path / "kibanda.db")
    with db.connection_context():
        db.execute_sql("DROP INDEX package_name_en_nocase")
        db.execute_sql('DROP INDEX grant_request_key')
        db.execute_sql('ALTER TABLE "grant" DROP COLUMN request_key')
        db.execute_sql("ALTER TABLE admin_user DROP COLUMN disabled")
        db.execute_sql("INSERT INTO admin_user (username, password_hash, role, created_at, "
                       "session_version) VALUES ('fundi', 'scrypt$x', 'technician', ?, 0)", (T,))
        first = Package.get(Package.name_en == "1 hour")
        twin = _package(name_en="1 Hour", profile_name="kb-1-hour-b")
    assert create_schema() == models.SCHEMA_VERSION >= 13
    with db.connection_context():
        assert [(u.username, u.disabled) for u in AdminUser.select()] == [("fundi", False)]
        # The older package keeps its name; the later twin gets its id, nothing else.
        assert Package.get_by_id(first.id).name_en == "1 hour"
        assert Package.get_by_id(twin.id).name_en == f"1 Hour (#{twin.id})"
        with pytest.raises(IntegrityError), db.atomic():
            _package(name_en="1 HOUR", profile_name="kb-1-hour-c")
        grant = Grant.create(username="X1", password="X1", package=first, source="manual",
                             expires_at=T, request_key="k1")
        with pytest.raises(IntegrityError), db.atomic():
            Grant.create(username="X2", password="X2", package=first, source="manual",
                         expires_at=T, request_key="k1")
        assert grant.request_key == "k1"
        for version in (12, 13):  # safe to run again
            models.MIGRATIONS[version](SqliteMigrator(db))
        assert Package.select().count() == 2


def test_package_names_are_unique_whatever_their_case_in_a_new_database(database):
    _package(name_en="1 hour")
    with pytest.raises(IntegrityError), database.atomic():
        _package(name_en="1 HOUR", profile_name="kb-other")


# -- schema v5 to v11: activity-log entries keep their values ---------------------------

def as_older_release(version: int, *drops: str) -> None:
    """Today's schema made to look as release ``version`` left it: the columns that release
    did not have dropped ("table.column"), and its schema version. Call inside a
    connection context on a database ``create_schema`` just made."""
    for drop in drops:
        table, column = drop.split(".")
        db.execute_sql(f'ALTER TABLE "{table}" DROP COLUMN "{column}"')
    SchemaVersion.delete().execute()
    SchemaVersion.create(version=version)


def test_v5_activity_log_gains_values_and_old_entries_still_read(tmp_path):
    from portal.models import AuditLog
    from portal.venue.activity import entry_words

    init_db(str(tmp_path / "v5.db"))
    create_schema()
    with db.connection_context():
        # The database as release 5 left it: no auditlog.facts, schema version 5.
        as_older_release(5, "audit_log.facts")
        db.execute_sql("INSERT INTO audit_log (at, actor, action, detail, address) VALUES "
                       "('2026-11-30 09:00:00', 'mama-njeri', 'vouchers.void', "
                       "'batch 3: 48 code(s) voided', '192.168.88.50')")
    assert create_schema() == models.SCHEMA_VERSION
    with db.connection_context():
        old = AuditLog.get()
        assert old.values() == {}
        assert entry_words(old, "sw") == ("Vocha zimebatilishwa", "batch 3: 48 code(s) voided")
        new = AuditLog.write("mama-njeri", "vouchers.void", "batch 4: 2 code(s) voided",
                             batch=4, count=2)
        assert entry_words(AuditLog.get_by_id(new.id), "sw") == (
            "Vocha zimebatilishwa", "Kundi #4: 2 zimebatilishwa")


# -- schema v14: fair use (a package's slow speed after its cap, when a grant was slowed) --

def test_v13_database_gets_fair_use_columns_and_keeps_its_packages_and_grants(tmp_path):
    init_db(str(tmp_path / "kibanda.db"))
    create_schema()
    with db.connection_context():
        as_older_release(13, "package.fair_use_rate", "grant.slowed_at")
        db.execute_sql("INSERT INTO package (name_en, name_sw, price, validity_seconds, "
                       "data_cap_bytes, rate_limit, devices, active, sort_order, profile_name, "
                       "created_at, updated_at) VALUES ('1 GB', '', 50, 86400, 1000000000, "
                       "'2M/5M', 1, 1, 0, 'kb-1-gb', ?, ?)", (T, T))
        insert_old_grant(source="mpesa", bytes_used=5)
    assert create_schema() == models.SCHEMA_VERSION >= 14
    with db.connection_context():
        assert [(p.name_en, p.fair_use_rate) for p in Package.select()] == [("1 GB", "")]
        assert [(g.username, g.bytes_used, g.slowed_at) for g in Grant.select()] == [
            ("48213377", 5, None)]


def test_v16_database_gets_the_voucher_window_marker_and_keeps_its_packages(tmp_path):
    init_db(str(tmp_path / "kibanda.db"))
    create_schema()
    with db.connection_context():
        as_older_release(16, "package.vouchers_disabled")
        db.execute_sql("INSERT INTO package (name_en, name_sw, price, validity_seconds, "
                       "rate_limit, devices, active, sort_order, profile_name, window_start, "
                       "window_end, created_at, updated_at) VALUES ('Night', '', 30, 86400, "
                       "'2M/5M', 1, 1, 0, 'kb-night', 1320, 360, ?, ?)", (T, T))
    assert create_schema() == models.SCHEMA_VERSION >= 19
    with db.connection_context():
        assert [(p.name_en, p.window_start, p.vouchers_disabled)
                for p in Package.select()] == [("Night", 1320, False)]
