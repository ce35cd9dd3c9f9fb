"""Vouchers: codes made in batches, pushed to the router as hotspot users, voided.

A code is both the hotspot username and its password, so the router's own login page
accepts it even when the appliance is down. Codes come from ``secrets`` and are unique
across all batches through the table's unique index (insert, and draw again on a clash).
"""
from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime

from peewee import IntegrityError, fn

from .. import jobs
from ..errors import NotFound, RouterError, ValidationError
from ..ledger import events
from ..ledger.grants import voucher_router_user
from ..models import AuditLog, Job, Package, Voucher, VoucherBatch, db, parse_id
from .packages import whole_number

log = logging.getLogger(__name__)

NUMERIC = "0123456789"
# No 0/O, 1/I/L: codes are read off paper and typed on phones.
ALNUM = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
ALPHABETS = {"numeric": NUMERIC, "alnum": ALNUM}
MIN_COUNT, MAX_COUNT = 1, 5000
MIN_LENGTH, MAX_LENGTH = 6, 10
DEFAULT_LENGTH = 8
PUSH_CHUNK = 500
INSERT_CHUNK = 500  # SQLite's bound-variable limit allows ~32k; 500 rows x 5 columns is safe


# --- codes ---------------------------------------------------------------------------

def draw_code(alphabet: str, length: int, prefix: str = "") -> str:
    """One random code; numeric codes never start with 0 (spreadsheets drop it)."""
    chars = ALPHABETS[alphabet]
    if alphabet == "numeric":
        body = str(10 ** (length - 1) + secrets.randbelow(9 * 10 ** (length - 1)))
    else:
        # One big random number per code, written in base 31: far fewer calls into the
        # OS random source than one secrets.choice per character.
        value = secrets.randbelow(len(chars) ** length)
        digits = []
        for _ in range(length):
            value, index = divmod(value, len(chars))
            digits.append(chars[index])
        body = "".join(digits)
    return prefix + body


def generate_codes(count: int, alphabet: str = "numeric", length: int = DEFAULT_LENGTH,
                   prefix: str = "", exclude: set[str] | frozenset = frozenset()) -> list[str]:
    """``count`` distinct codes (in memory, none of them in ``exclude``)."""
    codes: set[str] = set()
    while len(codes) < count:
        code = draw_code(alphabet, length, prefix)
        if code not in exclude:
            codes.add(code)
    return list(codes)


def clean_batch_options(count, alphabet: str = "numeric", length=DEFAULT_LENGTH,
                        prefix: str = "") -> dict:
    """Validate batch options from a form or the CLI."""
    count = whole_number(count, "count", MIN_COUNT, MAX_COUNT,
                         en=f"Make from {MIN_COUNT} to {MAX_COUNT:,} vouchers at a time.",
                         sw=f"Tengeneza vocha {MIN_COUNT} hadi {MAX_COUNT:,} kwa wakati mmoja.")
    if alphabet not in ALPHABETS:
        raise ValidationError(f"alphabet {alphabet!r}", field="alphabet",
                              en="Choose numbers only, or letters and numbers.",
                              sw="Chagua namba pekee, au herufi na namba.")
    length = whole_number(length if length not in (None, "") else DEFAULT_LENGTH, "length",
                          MIN_LENGTH, MAX_LENGTH,
                          en=f"Code length must be {MIN_LENGTH} to {MAX_LENGTH} characters.",
                          sw=f"Urefu wa msimbo uwe herufi {MIN_LENGTH} hadi {MAX_LENGTH}.")
    prefix = (prefix or "").strip().upper()
    if len(prefix) > 4 or any(ch not in NUMERIC + ALNUM for ch in prefix):
        raise ValidationError(f"prefix {prefix!r}", field="prefix",
                              en="Prefix: up to 4 letters or numbers (no O, I or L).",
                              sw="Kiambishi: hadi herufi au namba 4 (bila O, I au L).")
    space = (9 * 10 ** (length - 1)) if alphabet == "numeric" else len(ALNUM) ** length
    if count * 20 > space:
        raise ValidationError("code space too small", field="length",
                              en="Codes that short cannot be unique: choose a longer length.",
                              sw="Misimbo mifupi hivyo haiwezi kuwa ya kipekee: chagua urefu "
                                 "zaidi.")
    return {"count": count, "alphabet": alphabet, "length": length, "prefix": prefix}


# --- batches -------------------------------------------------------------------------

def create_batch(package: Package, count, now: datetime, created_by: str,
                 alphabet: str = "numeric", length=DEFAULT_LENGTH, prefix: str = "",
                 address: str = "") -> VoucherBatch:
    """Make a batch of unique codes for ``package`` (not yet on the router); audit-logged."""
    options = clean_batch_options(count, alphabet, length, prefix)
    if not package.active:
        raise ValidationError("retired package", field="package",
                              en="That package is retired: choose one that is on sale.",
                              sw="Kifurushi hicho kimesitishwa: chagua kinachouzwa.")
    codes = generate_codes(options["count"], options["alphabet"], options["length"],
                           options["prefix"])
    with db.atomic():
        batch = VoucherBatch.create(package=package, created_by=created_by, created_at=now,
                                    **options)
        for start in range(0, len(codes), INSERT_CHUNK):
            _insert_codes(batch, codes[start:start + INSERT_CHUNK], options, now)
        AuditLog.write(created_by, "vouchers.create",
                       f"batch {batch.id}: {options['count']} x {package.name_en}", address,
                       at=now, batch=batch.id, count=options["count"], name=package.name_en,
                       name_sw=package.name_sw)
        events.record_event(events.VOUCHER_BATCH, now, batch_id=batch.id,
                            package=package.name_en, count=options["count"],
                            price=package.price)
    return batch


def _insert_codes(batch: VoucherBatch, codes: list[str], options: dict, now: datetime) -> None:
    """Insert a chunk in one statement; on a clash with an older code, row by row."""
    rows = [{"code": c, "batch": batch.id, "package": batch.package_id, "state": Voucher.NEW,
             "created_at": now} for c in codes]
    try:
        with db.atomic():
            Voucher.insert_many(rows).execute()
        return
    except IntegrityError:
        pass  # some code already exists in an earlier batch: redo this chunk one by one
    for row in rows:
        for _attempt in range(100):
            try:
                with db.atomic():
                    Voucher.insert(row).execute()
                break
            except IntegrityError:
                row = {**row, "code": draw_code(options["alphabet"], options["length"],
                                                options["prefix"])}
        else:
            raise RuntimeError("could not draw a free voucher code")


def get_batch(batch_id) -> VoucherBatch:
    """A batch by id, or NotFound."""
    number = parse_id(batch_id)
    batch = VoucherBatch.get_or_none(VoucherBatch.id == number) if number is not None else None
    if batch is None:
        shown = str(batch_id)[:20]
        raise NotFound(f"batch {shown}", en=f"No voucher batch {shown}.",
                       sw=f"Hakuna kundi la vocha {shown}.")
    return batch


def batch_codes(batch: VoucherBatch):
    """The batch's vouchers in the order they were made (so reprints match)."""
    return Voucher.select().where(Voucher.batch == batch.id).order_by(Voucher.id)


@dataclass
class BatchCounts:
    """How many of a batch's codes are in each state."""

    new: int = 0
    on_router: int = 0
    used: int = 0
    expired: int = 0
    void: int = 0
    failed: int = 0  # codes still new after a push that did not finish

    @property
    def total(self) -> int:
        """All codes of the batch."""
        return self.new + self.on_router + self.used + self.expired + self.void


def batch_counts(batch: VoucherBatch) -> BatchCounts:
    """Counts by state; codes left new after a failed push are reported as failed."""
    counts = BatchCounts()
    query = (Voucher.select(Voucher.state, fn.COUNT(Voucher.id).alias("n"))
             .where(Voucher.batch == batch.id).group_by(Voucher.state).tuples())
    for state, number in query:
        setattr(counts, state, number)
    if batch.push_state == "failed":
        counts.failed = counts.new
    return counts


def list_batches(limit: int = 100) -> list[tuple[VoucherBatch, BatchCounts]]:
    """The newest batches with their counts."""
    batches = list(VoucherBatch.select(VoucherBatch, Package).join(Package)
                   .order_by(VoucherBatch.id.desc()).limit(limit))
    return [(batch, batch_counts(batch)) for batch in batches]


# --- the router ----------------------------------------------------------------------

def push_batch(batch_id: int, gateway, now: datetime, chunk: int = PUSH_CHUNK,
               actor: str = "system", address: str = "") -> BatchCounts:
    """Put the batch's new codes on the router, chunk by chunk; safe to run again.

    Each chunk is marked on the router as soon as the router confirms it, so a push cut
    off half way resumes where it stopped; a code the router already has ("exists", e.g.
    from the chunk in flight when the link dropped) counts as on the router.
    Raises RouterError when the router cannot be reached (the batch is then "failed").
    """
    batch = get_batch(batch_id)
    if batch.voided_at is not None:
        raise ValidationError("batch void", en="This batch was voided.",
                              sw="Kundi hili limebatilishwa.")
    package = batch.package
    VoucherBatch.update(push_state="pushing", push_error=None).where(
        VoucherBatch.id == batch.id).execute()
    failures: list[str] = []
    try:
        gateway.ensure_profile(package)
        last_id = 0
        while True:
            vouchers = list(Voucher.select(Voucher.id, Voucher.code)
                            .where((Voucher.batch == batch.id) & (Voucher.state == Voucher.NEW)
                                   & (Voucher.id > last_id))
                            .order_by(Voucher.id).limit(chunk))
            if not vouchers:
                break
            last_id = vouchers[-1].id
            results = gateway.bulk_add_users([voucher_router_user(v.code, package, batch.id, now)
                                              for v in vouchers])
            done = [r.name for r in results if r.status in ("created", "exists")]
            failures += [f"{r.name}: {r.message}" for r in results
                         if r.status not in ("created", "exists")]
            if done:
                # Conditional: a code redeemed or voided meanwhile keeps that state.
                (Voucher.update(state=Voucher.ON_ROUTER)
                 .where((Voucher.batch == batch.id) & (Voucher.code.in_(done))
                        & (Voucher.state == Voucher.NEW)).execute())
    except RouterError as exc:
        _finish_push(batch, "failed", exc.operator_message, actor, address, now)
        raise
    if failures:
        text = f"{len(failures)} code(s) refused by the router, e.g. {failures[0]}"
        _finish_push(batch, "failed", text, actor, address, now)
    else:
        _finish_push(batch, "done", None, actor, address, now)
    return batch_counts(get_batch(batch.id))


#: The agent's job that runs :func:`push_batch` for an owner's page.
PUSH_JOB = "vouchers.push"


def queue_push(batch_id: int, now: datetime, actor: str, address: str = "") -> Job:
    """Ask the agent to put the batch on the router; asking again while queued changes nothing."""
    batch = get_batch(batch_id)
    if batch.voided_at is not None:
        raise ValidationError("batch void", en="This batch was voided.",
                              sw="Kundi hili limebatilishwa.")
    with db.atomic():
        job = jobs.enqueue(PUSH_JOB, _push_key(batch.id), now, created_by=actor,
                           payload={"batch_id": batch.id, "actor": actor, "address": address})
        (VoucherBatch.update(push_state="queued", push_error=None)
         .where((VoucherBatch.id == batch.id) & (VoucherBatch.push_state != "pushing"))
         .execute())
    return job


def mark_push_waiting(batch_id: int) -> None:
    """A queued push could not reach the router: it is tried again, say so on the page."""
    VoucherBatch.update(push_state="queued").where(VoucherBatch.id == batch_id).execute()


def push_queued(batch: VoucherBatch) -> bool:
    """True while the agent has this batch's push queued or running."""
    return jobs.active(_push_key(batch.id)) is not None


def _push_key(batch_id: int) -> str:
    return f"batch:{batch_id}"




def _finish_push(batch: VoucherBatch, state: str, error: str | None, actor: str,
                 address: str, now: datetime) -> None:
    with db.atomic():
        VoucherBatch.update(push_state=state, push_error=error).where(
            VoucherBatch.id == batch.id).execute()
        AuditLog.write(actor, "vouchers.push",
                       f"batch {batch.id}: {state}" + (f" ({error})" if error else ""), address,
                       at=now, batch=batch.id, state=state)
    batch.push_state, batch.push_error = state, error


def void_batch(batch_id: int, gateway, now: datetime, actor: str = "system",
               address: str = "") -> int:
    """Take the batch's unused codes off the router and mark them void; returns how many.

    New codes are removed too: a push cut off mid-chunk may have put some of them on
    the router without the appliance knowing. Raises RouterError (and changes nothing)
    when the router cannot be reached, so no sellable code is left behind on it.
    """
    batch = get_batch(batch_id)
    unused = [v.code for v in Voucher.select(Voucher.code).where(
        (Voucher.batch == batch.id) & Voucher.state.in_([Voucher.NEW, Voucher.ON_ROUTER]))]
    removed: list[str] = []
    failed: list[str] = []
    for start in range(0, len(unused), PUSH_CHUNK):
        results = gateway.bulk_remove_users(unused[start:start + PUSH_CHUNK])
        removed += [r.name for r in results if r.ok]
        failed += [f"{r.name}: {r.message}" for r in results if not r.ok]
    with db.atomic():
        count = 0
        for start in range(0, len(removed), PUSH_CHUNK):
            count += (Voucher.update(state=Voucher.VOID)
                      .where((Voucher.batch == batch.id)
                             & (Voucher.code.in_(removed[start:start + PUSH_CHUNK]))
                             & Voucher.state.in_([Voucher.NEW, Voucher.ON_ROUTER]))
                      .execute())
        if not failed:
            VoucherBatch.update(voided_at=now).where(VoucherBatch.id == batch.id).execute()
        AuditLog.write(actor, "vouchers.void", f"batch {batch.id}: {count} code(s) voided"
                       + (f", {len(failed)} refused by the router" if failed else ""), address,
                       at=now, batch=batch.id, count=count)
    if failed:
        raise ValidationError(f"void incomplete: {failed[0]}",
                              en=f"{count} codes voided; the router refused {len(failed)}: "
                                 f"{failed[0]}. Try again.",
                              sw=f"Vocha {count} zimebatilishwa; ruta imekataa {len(failed)}: "
                                 f"{failed[0]}. Jaribu tena.")
    return count
