"""The hub's tables: sites and their keys, enrollment tokens, events, relayed M-Pesa
messages, signatures seen (replay memory) and operators.

One deferred handle (:data:`db`, a :class:`peewee.DatabaseProxy`) that :func:`init_db`
points at SQLite (a file in the hub's instance folder, WAL) or PostgreSQL
(``KIBANDA_HUB_DATABASE_URL=postgresql://...``, psycopg 3). Several hub processes or
machines on one PostgreSQL share nothing else: every rule that must hold across them
(an event stored once, a signature accepted once, a token used once) is a unique index
and a conditional write, never a check in memory. Times are naive UTC; money whole KES.
"""
from __future__ import annotations

import os
import secrets
from datetime import timedelta

from peewee import (
    AutoField, BigIntegerField, BooleanField, CharField, DatabaseProxy, DateTimeField,
    ForeignKeyField, IntegerField, Model, SqliteDatabase, TextField,
)

from portal.models import make_private
from portal.timeutil import utcnow

db = DatabaseProxy()

SQLITE_PRAGMAS = {"journal_mode": "wal", "foreign_keys": 1, "busy_timeout": 10000,
                  "synchronous": "normal"}
#: How long an enrollment token may be used.
TOKEN_LIFETIME = timedelta(days=7)


class BaseModel(Model):
    """Base for every hub table."""

    class Meta:
        database = db
        legacy_table_names = False


class HubSite(BaseModel):
    """One enrolled site: its slug, its current public key and what its heartbeat said."""

    slug = CharField(max_length=40, unique=True)
    name = CharField(max_length=120, default="")
    public_key = CharField(max_length=64, null=True)  # base64 of the 32 raw bytes
    key_id = CharField(max_length=16, null=True, index=True)
    enrolled_at = DateTimeField(null=True)
    last_seen_at = DateTimeField(null=True)
    # From the newest heartbeat (by its own time, so a late one never overwrites).
    heartbeat_at = DateTimeField(null=True)
    backlog = IntegerField(null=True)
    router_ok = BooleanField(null=True)
    active_sessions = IntegerField(null=True)
    last_sync_at = CharField(max_length=40, null=True)
    agent_version = CharField(max_length=40, null=True)
    created_at = DateTimeField(default=utcnow)


class EnrollmentToken(BaseModel):
    """A one-time token an operator hands to a technician for one site."""

    token_hash = CharField(max_length=64, unique=True)  # sha256 hex: the token is shown once
    site_slug = CharField(max_length=40)
    name = CharField(max_length=120, default="")
    expires_at = DateTimeField()
    used_at = DateTimeField(null=True)
    created_at = DateTimeField(default=utcnow)


class Event(BaseModel):
    """One event a site sent, stored once per (site, event id)."""

    id = AutoField()
    site = ForeignKeyField(HubSite, backref="events", on_delete="CASCADE")
    event_id = CharField(max_length=36)
    seq = BigIntegerField()
    kind = CharField(max_length=40)
    at = DateTimeField(index=True)  # when it happened at the site (UTC)
    data = TextField()  # the JSON object as sent
    # "sale" only: the money, and when it was paid (for today / this month).
    amount = IntegerField(null=True)
    paid_at = DateTimeField(null=True, index=True)
    received_at = DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("site", "event_id"), True), (("site", "kind", "paid_at"), False))


class SeenSignature(BaseModel):
    """A signature accepted recently: the same one again is a replay."""

    signature = CharField(max_length=100, unique=True)
    seen_at = DateTimeField(index=True)


class RelayMessage(BaseModel):
    """An M-Pesa message Safaricom posted to the hub for a site behind NAT."""

    STK, C2B, SMS_DELIVERY = "stk_callback", "c2b_confirmation", "sms_delivery"

    id = AutoField()
    site = ForeignKeyField(HubSite, backref="relayed", on_delete="CASCADE")
    kind = CharField(max_length=20)
    path = CharField(max_length=300, default="")
    body = TextField()
    source_ip = CharField(max_length=45, default="")
    received_at = DateTimeField(default=utcnow)
    acknowledged_at = DateTimeField(null=True, index=True)

    class Meta:
        indexes = ((("site", "id"), False),)


class Operator(BaseModel):
    """Someone who signs in to the hub's pages (made by ``kibanda hub operator add``)."""

    email = CharField(max_length=120, unique=True)
    password_hash = CharField(max_length=200)
    created_at = DateTimeField(default=utcnow)
    last_login_at = DateTimeField(null=True)
    session_version = IntegerField(default=0)


class OperatorLoginFailure(BaseModel):
    """A failed sign-in, for the lockout (keyed on the email and the address)."""

    email = CharField(max_length=120, index=True)
    address = CharField(max_length=45)
    at = DateTimeField(default=utcnow, index=True)


ALL_MODELS = [HubSite, EnrollmentToken, Event, SeenSignature, RelayMessage, Operator,
              OperatorLoginFailure]


def init_db(url: str, instance: str | None = None):
    """Point :data:`db` at PostgreSQL (``postgresql://...``) or at SQLite.

    ``url`` empty means ``hub.db`` in ``instance``, created 0600 like the site's
    database; ``sqlite:///path`` names another file.
    """
    if url.startswith(("postgresql://", "postgres://")):
        from playhouse.db_url import connect

        database = connect(url)
    else:
        path = url[len("sqlite:///"):] if url.startswith("sqlite:///") else ""
        if not path:
            path = os.path.join(instance or ".", "hub.db")
        make_private(path)  # 0600 before SQLite opens it, like the site's database
        database = SqliteDatabase(path, pragmas=SQLITE_PRAGMAS, check_same_thread=False)
    db.initialize(database)
    return database


def is_postgres() -> bool:
    """True when the hub runs on PostgreSQL."""
    return db.obj is not None and not isinstance(db.obj, SqliteDatabase)


def create_schema() -> None:
    """Create the hub's tables and indexes (safe to run again, from several processes)."""
    with db.connection_context():
        if is_postgres():
            # Two hub processes starting together must not both create a table.
            with db.atomic():
                db.execute_sql("SELECT pg_advisory_xact_lock(4711011)")
                db.create_tables(ALL_MODELS, safe=True)
        else:
            db.create_tables(ALL_MODELS, safe=True)


def new_token() -> str:
    """A fresh enrollment token (shown once; only its hash is stored)."""
    return secrets.token_urlsafe(24)
