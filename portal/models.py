"""The data model (peewee on SQLite in WAL mode, one file in the instance folder).

Money is whole KES in integer fields; every DateTimeField holds naive UTC.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import uuid
from datetime import timedelta

from peewee import (
    SQL, AutoField, BigIntegerField, BooleanField, CharField, DateTimeField, ForeignKeyField,
    IntegerField, Model, SqliteDatabase, TextField,
)

from .timeutil import utcnow

#: Deferred: ``init_db`` points it at the instance's file.
db = SqliteDatabase(None)

SCHEMA_VERSION = 19
#: In this order: the busy timeout first, so that switching to WAL waits for another
#: process's write instead of failing with "database is locked".
PRAGMAS = {
    "busy_timeout": 5000,
    "journal_mode": "wal",
    "foreign_keys": 1,
    "synchronous": "normal",
}


#: The largest row id taken from a form or a URL: SQLite integers are 64-bit, and Python's
#: int() refuses strings of more than 4,300 digits.
MAX_ID = 10**18 - 1
_ID = re.compile(r"[0-9]{1,18}")


def parse_id(value) -> int | None:
    """A row id as typed in a form or a URL (1 to 18 ASCII digits), else None."""
    text = str(value if value is not None else "").strip()
    return int(text) if _ID.fullmatch(text) else None


class BaseModel(Model):
    """Base for every table."""

    class Meta:
        database = db
        legacy_table_names = False


class Package(BaseModel):
    """Something a customer can buy; maps to one router user profile."""

    name_en = CharField(max_length=60)
    name_sw = CharField(max_length=60, default="")
    price = IntegerField()  # whole KES
    validity_seconds = IntegerField()  # wall-clock time from the purchase
    data_cap_bytes = BigIntegerField(null=True)
    rate_limit = CharField(max_length=80, default="")  # RouterOS syntax, rx/tx = up/down
    #: Fair use: the speed after the data cap (RouterOS rate, e.g. "256k/256k") on the
    #: package's second profile ``<profile_name>-slow``; "" = cut off at the cap.
    fair_use_rate = CharField(max_length=80, default="", constraints=[SQL("DEFAULT ''")])
    devices = IntegerField(default=1)  # shared-users on the router
    active = BooleanField(default=True)
    sort_order = IntegerField(default=0)
    profile_name = CharField(max_length=60, unique=True)
    # Time window (optional), Nairobi time: weekdays as digits Mon=0..Sun=6 ('' = every
    # day), minutes after midnight (None = all day); end <= start crosses midnight.
    window_days = CharField(max_length=7, default="", constraints=[SQL("DEFAULT ''")])
    window_start = IntegerField(null=True)
    window_end = IntegerField(null=True)
    # A purchase outside the window: "refuse" it, or sell it and "wait" for the next start.
    window_sale = CharField(max_length=8, default="refuse", constraints=[SQL("DEFAULT 'refuse'")])
    router_synced_at = DateTimeField(null=True)
    router_error = TextField(null=True)
    #: A windowed package only: whether its unused vouchers on the router were last set
    #: disabled (between windows) by the agent, so a quiet cycle writes nothing.
    vouchers_disabled = BooleanField(default=False, constraints=[SQL("DEFAULT 0")])
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)

    @classmethod
    def on_sale(cls):
        """Active packages in display order."""
        return cls.select().where(cls.active == True).order_by(cls.sort_order, cls.price)  # noqa: E712

    def name(self, lang: str = "en") -> str:
        """The package name in ``lang``."""
        return (self.name_sw if lang == "sw" and self.name_sw else self.name_en)


class Purchase(BaseModel):
    """One STK Push attempt and what became of it.

    pushing: recorded, the push has left or is about to; no CheckoutRequestID yet.
    pending: Daraja accepted the push (CheckoutRequestID stored); the customer decides.
    unanswered: the push got no answer (timeout, broken link): it may or may not have
    reached the phone, and it has no CheckoutRequestID to ask about.
    paid / failed / expired: M-Pesa's word (expired: no answer in time, still credited
    if a success comes late). review: a person must look (mismatch, orphan callback).
    """

    PUSHING, PENDING, UNANSWERED = "pushing", "pending", "unanswered"
    PAID, FAILED, EXPIRED, REVIEW = "paid", "failed", "expired", "review"
    #: Waiting for M-Pesa: counted in the backlog, shown to the customer as "pending".
    OPEN = (PUSHING, PENDING, UNANSWERED)

    #: Opaque and unguessable: names the purchase in its page's URL and in the CallBackURL
    #: (so a callback finds its purchase even when the push's answer never came back).
    reference = CharField(max_length=32, unique=True, default=lambda: secrets.token_urlsafe(16))
    phone = CharField(max_length=12, index=True)  # 2547XXXXXXXX / 2541XXXXXXXX
    package = ForeignKeyField(Package, backref="purchases", on_delete="RESTRICT")
    amount = IntegerField()
    mac = CharField(max_length=17, default="", index=True)
    ip = CharField(max_length=45, default="")
    # The request's own address, and whether the router confirmed the mac at that ip
    # (the push limits count what a client cannot choose; see ledger/limits.py).
    source = CharField(max_length=45, default="", constraints=[SQL("DEFAULT ''")])
    verified = BooleanField(default=False, constraints=[SQL("DEFAULT 0")])
    link_login_only = TextField(default="")
    link_orig = TextField(default="")
    checkout_request_id = CharField(max_length=80, unique=True, null=True)
    merchant_request_id = CharField(max_length=80, null=True)
    status = CharField(max_length=10, default=PENDING, index=True)
    result_code = IntegerField(null=True)
    result_desc = TextField(null=True)
    receipt = CharField(max_length=20, unique=True, null=True)
    paid_amount = IntegerField(null=True)
    created_at = DateTimeField(default=utcnow, index=True)
    updated_at = DateTimeField(default=utcnow)
    settled_at = DateTimeField(null=True)
    query_attempts = IntegerField(default=0)
    last_query_at = DateTimeField(null=True)
    next_query_at = DateTimeField(null=True, index=True)
    #: What the customer types as the PayBill account when paying from the M-Pesa menu
    #: (short, no look-alikes; see ledger/c2b.py). Also the STK push's AccountReference.
    account_code = CharField(max_length=8, unique=True, null=True)
    #: The id of the Grant this purchase tops up (None: a new grant). A plain column, not
    #: a foreign key: Grant is declared after Purchase and points back at it.
    topup_of = IntegerField(null=True, index=True)
    #: The language the customer bought in (en, sw): their SMS receipt speaks it.
    language = CharField(max_length=2, default="en", constraints=[SQL("DEFAULT 'en'")])


class VoucherBatch(BaseModel):
    """A set of voucher codes made together for one package."""

    package = ForeignKeyField(Package, backref="batches", on_delete="RESTRICT")
    count = IntegerField()
    alphabet = CharField(max_length=10, default="numeric")  # numeric | alnum
    length = IntegerField(default=8)
    prefix = CharField(max_length=8, default="")
    created_by = CharField(max_length=60)
    created_at = DateTimeField(default=utcnow)
    push_state = CharField(max_length=12, default="new")  # new, pushing, done, failed
    push_error = TextField(null=True)
    voided_at = DateTimeField(null=True)


class Voucher(BaseModel):
    """One code a venue sells over the counter."""

    NEW, ON_ROUTER, USED, EXPIRED, VOID = "new", "on_router", "used", "expired", "void"

    code = CharField(max_length=24, unique=True)
    batch = ForeignKeyField(VoucherBatch, backref="vouchers", on_delete="CASCADE")
    package = ForeignKeyField(Package, backref="vouchers", on_delete="RESTRICT")
    state = CharField(max_length=10, default=NEW, index=True)
    created_at = DateTimeField(default=utcnow)
    first_login_at = DateTimeField(null=True)
    expires_at = DateTimeField(null=True)


class Grant(BaseModel):
    """The right to be online: a hotspot user on the router until ``expires_at``."""

    PENDING, ON_ROUTER, REMOVED = "pending", "on_router", "removed"
    MPESA, VOUCHER, MANUAL, TRIAL = "mpesa", "voucher", "manual", "trial"

    username = CharField(max_length=40, unique=True)
    password = CharField(max_length=40)
    package = ForeignKeyField(Package, backref="grants", on_delete="RESTRICT")
    source = CharField(max_length=8)
    purchase = ForeignKeyField(Purchase, backref="grants", null=True, unique=True,
                               on_delete="RESTRICT")
    voucher = ForeignKeyField(Voucher, backref="grants", null=True, unique=True,
                              on_delete="RESTRICT")
    expires_at = DateTimeField(index=True)
    router_state = CharField(max_length=10, default=PENDING, index=True)
    router_error = TextField(null=True)
    router_attempts = IntegerField(default=0)
    next_router_attempt_at = DateTimeField(null=True)
    # The device to log in once the user is on the router (cleared when done).
    login_mac = CharField(max_length=17, default="")
    login_ip = CharField(max_length=45, default="")
    logged_in_at = DateTimeField(null=True)
    first_login_at = DateTimeField(null=True)
    created_at = DateTimeField(default=utcnow)
    created_by = CharField(max_length=60, default="")
    note = TextField(default="")
    #: Bytes in + out the router counted for this user (data-capped packages; the agent
    #: reads it from /ip/hotspot/user and /ip/hotspot/active). None: never read.
    bytes_used = BigIntegerField(null=True)
    #: Fair use: when the agent moved the user to the package's slow profile (the cap was
    #: reached); None: not slowed. Set once, with its ``grant.slowed`` outbox event.
    slowed_at = DateTimeField(null=True)
    #: Free access only: the confirmation form's one-time key, so a double tap (or the
    #: form sent again) finds the grant already given instead of giving a second one.
    request_key = CharField(max_length=32, null=True, unique=True)
    # Windowed grants: the user is disabled on the router between windows (what the agent
    # last wrote; reconcile puts it back after a reset).
    router_disabled = BooleanField(default=False, constraints=[SQL("DEFAULT 0")])
    # Data added by top-ups, on top of the package's cap (limit-bytes-total on the router).
    extra_bytes = BigIntegerField(default=0, constraints=[SQL("DEFAULT 0")])


class OutboxEvent(BaseModel):
    """A sale or change to send upstream; deleted never, marked sent on acknowledgement."""

    seq = AutoField()
    uuid = CharField(max_length=36, unique=True, default=lambda: str(uuid.uuid4()))
    kind = CharField(max_length=40)
    payload = TextField()
    created_at = DateTimeField(default=utcnow)
    sent_at = DateTimeField(null=True, index=True)
    attempts = IntegerField(default=0)
    next_attempt_at = DateTimeField(null=True)
    last_error = TextField(null=True)

    @classmethod
    def record(cls, kind: str, **payload) -> "OutboxEvent":
        """Write an event; call inside the transaction of the change it describes."""
        return cls.create(kind=kind, payload=json.dumps(payload, sort_keys=True, default=str))

    @property
    def data(self) -> dict:
        """The decoded payload."""
        return json.loads(self.payload)


class CallbackRecord(BaseModel):
    """Every M-Pesa callback received, with what was done about it (for review)."""

    received_at = DateTimeField(default=utcnow, index=True)
    remote_addr = CharField(max_length=45, default="")
    checkout_request_id = CharField(max_length=80, null=True, index=True)
    result_code = IntegerField(null=True)
    outcome = CharField(max_length=20)  # settled, duplicate, failed, unknown, mismatch, malformed
    detail = TextField(default="")
    body = TextField()


class C2BPayment(BaseModel):
    """A payment made from the M-Pesa menu (PayBill or Till), from a C2B confirmation or
    found by Pull Transactions; recorded before it is matched, so it is never lost.

    new: recorded, not yet matched (a crash between the two: the agent matches it).
    credited: its purchase (a waiting one, or a sale made for it) is paid and has a grant.
    known: the receipt already belongs to a purchase (an STK payment seen again).
    review: a person decides (grant the nearest package, or mark refunded); see ``reason``.
    refunded: the owner gave the money back.
    """

    NEW, CREDITED, KNOWN, REVIEW, REFUNDED = "new", "credited", "known", "review", "refunded"

    trans_id = CharField(max_length=20, unique=True)  # the M-Pesa receipt
    transaction_type = CharField(max_length=40, default="")
    bill_ref = CharField(max_length=40, default="")
    amount_text = CharField(max_length=20, default="")
    amount = IntegerField(null=True)  # whole KES, None when it is not a whole number
    msisdn = CharField(max_length=80, default="")  # as M-Pesa sent it: plain, masked or hashed
    paid_at = DateTimeField(null=True)  # TransTime, as UTC
    first_name = CharField(max_length=40, default="")
    via = CharField(max_length=8, default="direct")  # direct, relay, pull, lookup
    source_ip = CharField(max_length=45, default="")
    status = CharField(max_length=10, default=NEW, index=True)
    reason = TextField(default="")
    purchase = ForeignKeyField(Purchase, backref="c2b_payments", null=True,
                               on_delete="RESTRICT")
    copies = IntegerField(default=1)  # how many times the confirmation arrived
    received_at = DateTimeField(default=utcnow, index=True)
    settled_at = DateTimeField(null=True)
    resolved_by = CharField(max_length=60, default="")
    body = TextField(default="")


class GrantDevice(BaseModel):
    """A device that logged in with a grant: it holds one of the package's places."""

    grant = ForeignKeyField(Grant, backref="devices", on_delete="CASCADE")
    mac = CharField(max_length=17)
    ip = CharField(max_length=45, default="")
    first_seen_at = DateTimeField(default=utcnow)
    last_seen_at = DateTimeField(default=utcnow)
    freed_at = DateTimeField(null=True)
    freed_by = CharField(max_length=60, default="")

    class Meta:
        indexes = ((("grant", "mac"), False),)


class CodeAttempt(BaseModel):
    """A wrong voucher / access-code / receipt guess that was checked (for abuse limits).

    Only what the limits need: the request's address and the device the router confirmed
    (its MAC; '' when the claim was not confirmed). Rows older than a day may be pruned.
    """

    device = CharField(max_length=64, index=True)  # the verified device's MAC, or ''
    source = CharField(max_length=45, default="",  # the request's own address
                       constraints=[SQL("DEFAULT ''")])
    at = DateTimeField(default=utcnow, index=True)
    ok = BooleanField(default=False)


class AdminUser(BaseModel):
    """A venue owner or technician who signs in to the admin pages."""

    OWNER, TECHNICIAN = "owner", "technician"

    username = CharField(max_length=60, unique=True)
    password_hash = CharField(max_length=200)
    role = CharField(max_length=12, default=OWNER)
    created_at = DateTimeField(default=utcnow)
    last_login_at = DateTimeField(null=True)
    #: Bumped on sign-out and password change: a session signed with an older value is over.
    session_version = IntegerField(default=0)
    #: A disabled account cannot sign in (its sessions ended when it was disabled).
    disabled = BooleanField(default=False, constraints=[SQL("DEFAULT 0")])


class LoginFailure(BaseModel):
    """A failed admin sign-in, for the per-user-per-address lockout."""

    username = CharField(max_length=60, index=True)
    address = CharField(max_length=45)
    at = DateTimeField(default=utcnow, index=True)


class Setting(BaseModel):
    """A site setting changed from the admin pages; secret ones are Fernet-encrypted."""

    key = CharField(max_length=60, primary_key=True)
    value = TextField()
    encrypted = BooleanField(default=False)
    updated_at = DateTimeField(default=utcnow)


class AuditLog(BaseModel):
    """Who did what, when, from where.

    ``action`` is a key ("package.create") and ``facts`` the entry's values as JSON
    ({"name": "1 hour", "name_sw": "Saa 1"}): the owner's pages render the line in their
    language from both (``portal/venue/activity.py``). ``detail`` is the English line for
    logs and for entries written before v11, which have no values.
    """

    at = DateTimeField(default=utcnow, index=True)
    actor = CharField(max_length=60)
    action = CharField(max_length=60)
    detail = TextField(default="")
    address = CharField(max_length=45, default="")
    facts = TextField(default="", constraints=[SQL("DEFAULT ''")])

    @classmethod
    def write(cls, actor: str, action: str, detail: str = "", address: str = "", *,
              at=None, **values) -> "AuditLog":
        """Append one entry; ``values`` are the facts its translated line shows."""
        return cls.create(at=at or utcnow(), actor=actor, action=action, detail=detail,
                          address=address,
                          facts=json.dumps(values, ensure_ascii=False) if values else "")

    def values(self) -> dict:
        """The entry's values ({} for an entry written before they were kept)."""
        try:
            loaded = json.loads(self.facts) if self.facts else {}
        except ValueError:
            return {}
        return loaded if isinstance(loaded, dict) else {}


class TokenCache(BaseModel):
    """Shared OAuth tokens (Daraja invalidates the previous token on every request)."""

    name = CharField(max_length=60, primary_key=True)
    token = TextField()
    expires_at = DateTimeField()


class Job(BaseModel):
    """Work queued for the agent (a voucher batch to push): at least once, never twice at once.

    ``key`` names what the job works on (``batch:12``): while one job for a key is queued
    or running, asking again returns that job. A running job whose lease has lapsed (its
    agent died) is taken up again; every job kind is safe to run again.
    """

    QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"

    kind = CharField(max_length=40)
    key = CharField(max_length=80, index=True)
    payload = TextField(default="{}")
    state = CharField(max_length=10, default=QUEUED, index=True)
    attempts = IntegerField(default=0)
    run_after = DateTimeField(default=utcnow, index=True)
    lease_until = DateTimeField(null=True)
    last_error = TextField(null=True)
    created_by = CharField(max_length=60, default="")
    created_at = DateTimeField(default=utcnow)
    finished_at = DateTimeField(null=True)

    @property
    def data(self) -> dict:
        """The decoded payload."""
        return json.loads(self.payload)


class TrialClaim(BaseModel):
    """A free trial taken: once per phone and once per device per Nairobi day (unique
    indexes, so two taps at once give one trial)."""

    day = CharField(max_length=10)  # YYYY-MM-DD, Nairobi
    phone = CharField(max_length=12)
    mac = CharField(max_length=17)
    grant = ForeignKeyField(Grant, backref="trial_claims", on_delete="CASCADE")
    at = DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("day", "phone"), True), (("day", "mac"), True))


class SmsMessage(BaseModel):
    """One SMS Kibanda sends (a receipt, a reminder, the owner's summary or an alert).

    The row is the outbox: written queued (a receipt in the sale's own transaction), sent
    by the agent. queued: waiting (again, after a retryable error, from ``next_attempt_at``).
    sending: handed to the provider; a row left here by a crash is never sent again
    (``ledger/sms.py``). sent: accepted (``provider_id``, ``cost_cents``). delivered /
    failed: the last word (a refusal, a delivery report, or too many attempts), with the
    provider's reason in ``failure_reason``.
    """

    QUEUED, SENDING, SENT, DELIVERED, FAILED = "queued", "sending", "sent", "delivered", "failed"

    #: What it is about, unique: a receipt is sent once per grant (``receipt:<grant id>``),
    #: the summary once a day (``summary:2026-12-02``).
    key = CharField(max_length=80, unique=True)
    kind = CharField(max_length=12)  # receipt, reminder, summary, alert
    to = CharField(max_length=16)  # +2547XXXXXXXX
    language = CharField(max_length=2, default="en")
    text = TextField()
    state = CharField(max_length=10, default=QUEUED, index=True)
    provider_id = CharField(max_length=80, null=True, index=True)
    cost_cents = IntegerField(default=0)  # hundredths of a shilling, as the provider charged
    parts = IntegerField(default=1)
    failure_code = IntegerField(null=True)
    failure_reason = CharField(max_length=200, default="")
    last_error = TextField(default="")  # the last retryable error (for the owner's page)
    attempts = IntegerField(default=0)
    created_at = DateTimeField(default=utcnow, index=True)
    next_attempt_at = DateTimeField(default=utcnow, index=True)
    #: Not worth sending after this (a reminder after its grant ended): failed "TooLate".
    give_up_at = DateTimeField(null=True)
    sent_at = DateTimeField(null=True)
    finished_at = DateTimeField(null=True)


class SchemaVersion(BaseModel):
    """The schema version this database is at."""

    version = IntegerField()
    applied_at = DateTimeField(default=utcnow)


#: Package names are unique whatever their case ("1 Hour" is "1 hour"): the CLI and the
#: owner find a package by its name.
PACKAGE_NAME_INDEX = ("CREATE UNIQUE INDEX IF NOT EXISTS package_name_en_nocase "
                      "ON package (name_en COLLATE NOCASE)")
Package.add_index(SQL(PACKAGE_NAME_INDEX))

ALL_MODELS = [Package, Purchase, VoucherBatch, Voucher, Grant, OutboxEvent, CallbackRecord,
              CodeAttempt, AdminUser, LoginFailure, Setting, AuditLog, TokenCache, Job,
              C2BPayment, GrantDevice, TrialClaim, SmsMessage, SchemaVersion]


def init_db(path: str) -> SqliteDatabase:
    """Point the deferred database at ``path`` with WAL, foreign keys and a busy timeout.

    The file is made private (0600) before SQLite opens it; SQLite gives the -wal and -shm
    files it creates the database file's mode.
    """
    if path != ":memory:" and not path.startswith("file:"):
        make_private(path)
    db.init(path, pragmas=PRAGMAS, check_same_thread=False)
    return db


def make_private(path: str) -> None:
    """Create the database file with mode 0600, or set 0600 on it and its -wal and -shm.

    They hold live access codes, phone numbers and password hashes.
    """
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass
    for name in (path, path + "-wal", path + "-shm"):
        try:
            os.chmod(name, 0o600)
        except FileNotFoundError:
            continue


def _explicit_purchase_states(migrator) -> None:
    """v2: a purchase's state lives in its status, never in the wording of result_desc.

    A push still waiting for its answer becomes ``pushing``; one whose answer never came
    (v1 wrote "push timed out" into result_desc) becomes ``unanswered``. The time of the
    last STK query gets its own column; the never-read ``language`` column goes.
    """
    from playhouse.migrate import migrate

    from .timeutil import backoff_seconds

    columns = {column.name for column in db.get_columns("purchase")}
    steps = []
    if "last_query_at" not in columns:
        steps.append(migrator.add_column("purchase", "last_query_at",
                                         DateTimeField(null=True)))
    if "language" in columns:
        steps.append(migrator.drop_column("purchase", "language"))
    migrate(*steps)
    waiting = (Purchase.status == Purchase.PENDING) & Purchase.checkout_request_id.is_null()
    (Purchase.update(status=Purchase.UNANSWERED)
     .where(waiting & Purchase.result_desc.startswith("push timed out")).execute())
    Purchase.update(status=Purchase.PUSHING).where(waiting & Purchase.result_desc.is_null()).execute()
    # v1 kept only the next query's time; the last one was that minus its backoff.
    asked = Purchase.select(Purchase.id, Purchase.query_attempts, Purchase.next_query_at).where(
        (Purchase.query_attempts > 0) & Purchase.next_query_at.is_null(False))
    for row in asked:
        last = row.next_query_at - timedelta(seconds=backoff_seconds(row.query_attempts, 5, 60))
        Purchase.update(last_query_at=last).where(Purchase.id == row.id).execute()


def _admin_session_versions(migrator) -> None:
    """v3: each admin user has a session version, so signing out ends a copied cookie too."""
    from playhouse.migrate import migrate

    columns = {column.name for column in db.get_columns("admin_user")}
    if "session_version" not in columns:
        migrate(migrator.add_column("admin_user", "session_version", IntegerField(default=0)))


def _limit_keys(migrator) -> None:
    """v4: limits keyed on what a client cannot choose.

    A code guess and a push record the request's own address; a push also records whether
    the router confirmed the device (CodeAttempt.device now holds only a confirmed MAC).
    Safe to run again: a column already there is left alone.
    """
    from playhouse.migrate import migrate

    steps = []
    for model, name in ((CodeAttempt, "source"), (Purchase, "source"), (Purchase, "verified")):
        table = model._meta.table_name
        if name not in {column.name for column in db.get_columns(table)}:
            # NOT NULL with the column's own DEFAULT: one ALTER, no copy of the table.
            steps.append(migrator.add_column(table, name, model._meta.fields[name],
                                             allow_not_null=True))
    migrate(*steps)


def _purchase_references(migrator) -> None:
    """v5: every purchase gets an opaque reference (its page's URL, its CallBackURL)."""
    from playhouse.migrate import migrate

    if "reference" not in {column.name for column in db.get_columns("purchase")}:
        migrate(migrator.add_column("purchase", "reference", CharField(max_length=32, null=True)))
    for row in Purchase.select(Purchase.id).where(Purchase.reference.is_null()):
        Purchase.update(reference=secrets.token_urlsafe(16)).where(Purchase.id == row.id).execute()
    db.execute_sql("CREATE UNIQUE INDEX IF NOT EXISTS purchase_reference ON purchase (reference)")


def _account_codes(migrator) -> None:
    """v6: a purchase's PayBill account code (pay from the M-Pesa menu); old ones have none."""
    from playhouse.migrate import migrate

    if "account_code" not in {column.name for column in db.get_columns("purchase")}:
        migrate(migrator.add_column("purchase", "account_code",
                                    CharField(max_length=8, null=True)))
    db.execute_sql("CREATE UNIQUE INDEX IF NOT EXISTS purchase_account_code "
                   "ON purchase (account_code)")


def _grant_bytes_used(migrator) -> None:
    """v8: the data a grant used on the router (for data-capped packages)."""
    from playhouse.migrate import migrate

    if "bytes_used" not in {column.name for column in db.get_columns("grant")}:
        migrate(migrator.add_column("grant", "bytes_used", BigIntegerField(null=True)))


def _audit_values(migrator) -> None:
    """v11: activity-log entries keep their values (``facts``) so a page can say them in
    Swahili; older entries keep only their English ``detail``."""
    from playhouse.migrate import migrate

    table = AuditLog._meta.table_name
    if db.table_exists(table) and \
            "facts" not in {column.name for column in db.get_columns(table)}:
        migrate(migrator.add_column(table, "facts", AuditLog._meta.fields["facts"],
                                    allow_not_null=True))


def _accounts_and_free_access_keys(migrator) -> None:
    """v12: an owner can disable a technician's account; free access carries the one-time
    key of the form that gave it (a double tap gives one grant, not two)."""
    _add_columns([(AdminUser, "disabled"), (Grant, "request_key")])
    db.execute_sql("CREATE UNIQUE INDEX IF NOT EXISTS grant_request_key "
                   'ON "grant" (request_key)')


def _unique_package_names(migrator) -> None:
    """v13: package names unique whatever their case. Older sites may hold two packages of
    one name: the later ones get their id added ("1 hour (#7)"), which the owner sees and
    can change; nothing else about them changes."""
    seen: set[str] = set()
    for package in Package.select(Package.id, Package.name_en).order_by(Package.id):
        key = package.name_en.casefold()
        if key in seen:
            renamed = f"{package.name_en[:52]} (#{package.id})"
            Package.update(name_en=renamed).where(Package.id == package.id).execute()
            key = renamed.casefold()
        seen.add(key)
    db.execute_sql(PACKAGE_NAME_INDEX)


def _add_columns(columns: list[tuple]) -> None:
    """Add each (model, column name) not yet in its table (safe to run again)."""
    from playhouse.migrate import SqliteMigrator, migrate

    migrator = SqliteMigrator(db)
    steps = []
    for model, name in columns:
        table = model._meta.table_name
        if name not in {column.name for column in db.get_columns(table)}:
            field = model._meta.fields[name]
            steps.append(migrator.add_column(table, name, field, allow_not_null=True)
                         if not field.null else migrator.add_column(table, name, field))
    migrate(*steps)


def _fair_use(migrator) -> None:
    """v14: a package's slow speed after its data cap, and when a grant was slowed."""
    _add_columns([(Package, "fair_use_rate"), (Grant, "slowed_at")])


def _time_windows(migrator) -> None:
    """v15: packages sold and usable in a time window (nights, weekends); a windowed
    grant's user is disabled on the router between windows."""
    _add_columns([(Package, "window_days"), (Package, "window_start"), (Package, "window_end"),
                  (Package, "window_sale"), (Grant, "router_disabled")])


def _window_vouchers(migrator) -> None:
    """v19: unused vouchers of a windowed package are disabled on the router between
    windows, like its grants."""
    _add_columns([(Package, "vouchers_disabled")])


def _top_ups(migrator) -> None:
    """v16: a purchase may top up an existing grant (more time or more data)."""
    _add_columns([(Purchase, "topup_of"), (Grant, "extra_bytes")])
    db.execute_sql("CREATE INDEX IF NOT EXISTS purchase_topup_of ON purchase (topup_of)")


def _purchase_languages(migrator) -> None:
    """v17: a purchase keeps the customer's language (their SMS receipt speaks it); older
    purchases are English."""
    _add_columns([(Purchase, "language")])


#: Migrations by target version: ``{2: fn(migrator)}`` using playhouse.migrate.
MIGRATIONS = {2: _explicit_purchase_states, 3: _admin_session_versions, 4: _limit_keys,
              5: _purchase_references, 6: _account_codes, 8: _grant_bytes_used,
              11: _audit_values, 12: _accounts_and_free_access_keys,
              13: _unique_package_names, 14: _fair_use, 15: _time_windows, 16: _top_ups,
              17: _purchase_languages, 19: _window_vouchers}


def create_schema() -> int:
    """Create missing tables and run pending migrations; return the schema version."""
    from playhouse.migrate import SqliteMigrator

    with db.connection_context():
        current = 0
        if SchemaVersion.table_exists():
            row = SchemaVersion.select().order_by(SchemaVersion.version.desc()).first()
            current = row.version if row else 0
        if current == 0:
            db.create_tables(ALL_MODELS, safe=True)
            SchemaVersion.create(version=SCHEMA_VERSION)
            return SCHEMA_VERSION
        # Migrations first: creating today's indexes on yesterday's tables would index
        # columns that do not exist yet (SQLite then reads "name" as a string constant).
        migrator = SqliteMigrator(db)
        for version in sorted(v for v in MIGRATIONS if v > current):
            with db.atomic():
                MIGRATIONS[version](migrator)
                SchemaVersion.create(version=version)
            current = version
        db.create_tables(ALL_MODELS, safe=True)  # tables (and indexes) new in this release
        return current
