"""Sending the outbox to the operator's hub, and fetching M-Pesa messages it relays.

``Uploader.send(now)``: batches of at most 500 unsent events in sequence order, signed with
the site key (``portal.signing``), re-signed for every attempt; only the ids the hub
acknowledges are marked sent. A failure (no answer, 5xx, 408, 429) waits a capped
exponential backoff with jitter, kept in Setting rows (``portal.upstream``) so a restart
keeps it; any other 4xx stops the queue and shows as an error until the site is
enrolled again. Nothing is ever deleted here.

``RelayFetcher.fetch(now)``: when ``MPESA_RELAY`` is on, a signed GET of the messages the
hub holds for this site; each goes to the same function the site's own endpoint calls
(:data:`RELAY_HANDLERS`), and is acknowledged once handled.
"""
from __future__ import annotations

import hashlib
import json
import logging
import random
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Callable

import requests

from portal import signing, upstream
from portal.ledger import c2b, callbacks, grants, sms
from portal.models import OutboxEvent, db
from portal.timeutil import backoff_seconds

log = logging.getLogger("kibanda.agent.sync")

BATCH = 500
#: Batches per agent cycle: a long backlog drains over a few cycles, and settling
#: payments never waits behind it for long.
BATCHES_PER_CYCLE = 20
FIRST_BACKOFF, MAX_BACKOFF = 2.0, 300.0
TIMEOUT = (5.0, 30.0)
#: Statuses that are worth trying again (every other 4xx stops the queue). 409 is the hub
#: refusing a signature it saw before: our own request again (an agent restarted within
#: the same second), never a reason to stop.
RETRYABLE_4XX = (408, 409, 429)


class HubRefused(Exception):
    """The hub answered a 4xx that retrying will not fix."""


def site_key_path(config) -> Path:
    """The site key file in the instance folder."""
    return Path(str(config.get("INSTANCE_PATH") or ".")) / signing.SITE_KEY_FILE


Row = tuple  # (seq, uuid, kind, created_at, payload): one unsent outbox row


def event_json(row: Row) -> str:
    """One outbox row as the contract's EVENT, as JSON text.

    The payload is spliced in as stored (it was written by ``json.dumps``): sent as it is,
    and 50,000 events are not decoded and encoded again on a Raspberry Pi.
    """
    seq, uuid, kind, created_at, payload = row
    return (f'{{"id":{json.dumps(uuid)},"seq":{int(seq)},"kind":{json.dumps(kind)},'
            f'"at":"{upstream.iso(created_at)}","data":{payload}}}')


def batch_body(rows: list[Row]) -> bytes:
    """The request body for a batch: ``{"events": [EVENT, ...]}``."""
    return ('{"events":[' + ",".join(event_json(row) for row in rows) + "]}").encode("utf-8")


def unsent_rows(limit: int) -> list[Row]:
    """The oldest unsent outbox rows, in sequence order."""
    return list(OutboxEvent.select(OutboxEvent.seq, OutboxEvent.uuid, OutboxEvent.kind,
                                   OutboxEvent.created_at, OutboxEvent.payload)
                .where(OutboxEvent.sent_at.is_null()).order_by(OutboxEvent.seq)
                .limit(limit).tuples())


class HubClient:
    """Signed requests to the hub for one site (a fresh signature every attempt)."""

    def __init__(self, config, session: requests.Session | None = None):
        self.config = config
        self.key = signing.load_key(site_key_path(config))
        self.session = session or requests.Session()
        #: The last timestamp each recent (method, path, body digest) was signed with.
        self._signed: dict[tuple[str, str, bytes], int] = {}

    @property
    def base(self) -> str:
        """The hub's URL (read each time: ``KIBANDA_UPSTREAM_URL`` or the enrolled one)."""
        return str(self.config.get("UPSTREAM_URL") or "").rstrip("/")

    @property
    def site(self) -> str:
        """This site's id at the hub."""
        return str(self.config.get("SITE_ID") or "")

    def request(self, method: str, path: str, body: bytes = b"", timeout=TIMEOUT,
                now: float | None = None) -> requests.Response:
        """Send one signed request; ``path`` includes the query string."""
        stamp = int(time.time() if now is None else now)
        # Ed25519 is deterministic: the same request in the same second would carry the
        # same signature, which the hub refuses as a replay. Such a one gets the next second.
        request_key = (method, path, hashlib.sha256(body).digest())
        if request_key in self._signed:
            stamp = max(stamp, self._signed[request_key] + 1)
        self._signed = {k: v for k, v in self._signed.items() if v >= stamp - 5}
        self._signed[request_key] = stamp
        headers = signing.sign_headers(self.key, self.site, method, path, body, stamp)
        if body:
            headers["Content-Type"] = "application/json"
        return self.session.request(method, self.base + path, data=body or None,
                                    headers=headers, timeout=timeout)

    def close(self) -> None:
        """Close the HTTP session."""
        self.session.close()


def _error_text(response: requests.Response) -> str:
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        error = None
    return f"hub answered {response.status_code}" + (f": {str(error)[:200]}" if error else "")


class Uploader:
    """The outbox, sent upstream (one per agent)."""

    def __init__(self, config, client_factory: Callable[[], HubClient] | None = None):
        self.config = config
        self._factory = client_factory or (lambda: HubClient(config))
        self._client: HubClient | None = None
        self.batch = BATCH
        self.batches_per_cycle = BATCHES_PER_CYCLE
        #: What the last try said of the internet link: True (the hub answered, whatever
        #: it said), False (no answer: a network error or a timeout), None (no try).
        self.reachable: bool | None = None

    @property
    def client(self) -> HubClient:
        """The signed HTTP client, made on first use."""
        if self._client is None:
            self._client = self._factory()
        return self._client

    def close(self) -> None:
        """Close the HTTP session."""
        if self._client is not None:
            self._client.close()
            self._client = None

    def ready(self, now: datetime) -> bool:
        """Enrolled, not stopped by a refusal, and not inside a backoff."""
        if not upstream.enrolled(self.config):
            return False
        state = upstream.read_state()
        if state.get(upstream.STOPPED):
            return False
        retry_at = upstream.parse_iso(state.get(upstream.RETRY_AT))
        return retry_at is None or retry_at <= now

    def send(self, now: datetime) -> int:
        """Send what is unsent (up to a few batches); returns how many were acknowledged."""
        if not self.ready(now):
            return 0
        acknowledged = 0
        for _ in range(self.batches_per_cycle):
            rows = unsent_rows(self.batch)
            if not rows:
                break
            try:
                held = self._send_batch(rows)
            except HubRefused as exc:
                self.reachable = True
                self._stop(rows, str(exc))
                break
            except (requests.ConnectionError, requests.Timeout) as exc:
                self.reachable = False
                self._retry_later(rows, now, str(exc)[:300])
                break
            except (requests.RequestException, ValueError) as exc:
                self.reachable = True  # the hub answered, badly: the link itself works
                self._retry_later(rows, now, str(exc)[:300])
                break
            self.reachable = True
            acknowledged += self._mark_sent(rows, held, now)
            if len(rows) < self.batch:
                break
        return acknowledged

    def _send_batch(self, rows: list[Row]) -> set[str]:
        body = batch_body(rows)
        response = self.client.request("POST", f"/v1/sites/{self.client.site}/events", body)
        if 400 <= response.status_code < 500 and response.status_code not in RETRYABLE_4XX:
            raise HubRefused(_error_text(response))
        if response.status_code != 200:
            raise requests.HTTPError(_error_text(response))
        held = response.json().get("acknowledged")
        if not isinstance(held, list):
            raise ValueError("hub answered without an acknowledged list")
        return {str(event_id) for event_id in held}

    def _mark_sent(self, rows: list[Row], held: set[str], now: datetime) -> int:
        ids = [row[0] for row in rows if row[1] in held]
        unsent = OutboxEvent.sent_at.is_null()
        if len(ids) == len(rows):
            # The whole batch: it is every unsent row from its first seq to its last (new
            # rows only ever get higher numbers), so a range says it without 500 parameters.
            which = unsent & OutboxEvent.seq.between(rows[0][0], rows[-1][0])
        else:
            which = unsent & OutboxEvent.seq.in_(ids)
        with db.atomic():
            if ids:
                OutboxEvent.update(sent_at=now, last_error=None).where(which).execute()
            upstream.write_state(**{upstream.LAST_OK_AT: upstream.iso(now),
                                    upstream.FAILURES: None, upstream.RETRY_AT: None,
                                    upstream.LAST_ERROR: None})
        return len(ids)

    def _note_attempt(self, rows: list[Row], error: str) -> None:
        (OutboxEvent.update(attempts=OutboxEvent.attempts + 1, last_error=error)
         .where(OutboxEvent.seq.in_([row[0] for row in rows])).execute())

    def _retry_later(self, rows: list[Row], now: datetime, error: str) -> None:
        failures = int(upstream.read_state().get(upstream.FAILURES) or 0)
        # Full backoff for the attempt, then jitter down to half of it: a hub coming back
        # after an outage is not hit by every site in the same second.
        delay = backoff_seconds(failures, FIRST_BACKOFF, MAX_BACKOFF) * random.uniform(0.5, 1.0)
        retry_at = now + timedelta(seconds=delay)
        with db.atomic():
            self._note_attempt(rows, error)
            upstream.write_state(**{upstream.FAILURES: str(failures + 1),
                                    upstream.RETRY_AT: upstream.iso(retry_at),
                                    upstream.LAST_ERROR: error})
        log.warning("sync: %s; next try at %s", error, upstream.iso(retry_at))

    def _stop(self, rows: list[Row], error: str) -> None:
        with db.atomic():
            self._note_attempt(rows, error)
            upstream.write_state(**{upstream.STOPPED: error, upstream.RETRY_AT: None})
        log.error("sync stopped: %s (fix it, then run `kibanda enroll` again)", error)


# --- the relay ---------------------------------------------------------------------------------

def settle_relayed_stk(agent, message: dict, now: datetime) -> None:
    """A relayed STK callback: exactly what ``POST /mpesa/callback/<secret>/<ref>`` does."""
    secret, _, reference = str(message.get("path") or "").partition("/")
    status, _answer = callbacks.receive_stk_callback(
        agent.config, secret, reference or None, str(message.get("body") or "").encode("utf-8"),
        str(message.get("source_ip") or ""), now, lambda: agent.gateway)
    if status != 200:
        log.warning("relayed callback %s refused (%s)", message.get("id"), status)


#: How each kind of relayed message is settled: ``handler(agent, message, now)``; a
#: handler raises ValueError for a body it refuses (acknowledged, like a 400), anything
#: else leaves the message on the hub for the next fetch. A kind with no handler is left on
#: the hub (re-delivered, never lost) until one is added here.
def settle_relayed_c2b(agent, message: dict, now: datetime) -> None:
    """A relayed C2B confirmation: exactly what ``POST /mpesa/c2b/confirmation/<secret>``
    does (the secret checked, the payment recorded, then matched and credited)."""
    outcome = c2b.relayed_confirmation(
        str(message.get("path") or ""), str(message.get("body") or "").encode("utf-8"),
        source_ip=str(message.get("source_ip") or ""), config=agent.config, now=now)
    if outcome is None:
        log.warning("relayed C2B confirmation %s refused (wrong secret)", message.get("id"))
    elif outcome.outcome == c2b.MALFORMED:
        raise ValueError("malformed C2B confirmation")  # acknowledged, like the site's 400
    elif outcome.outcome == c2b.CREDITED:
        # As the site's own URL does, outside the settlement: a router that is down only
        # delays access (the provision step retries).
        grants.provision_if_due(outcome.grant, agent.gateway, now)


def record_relayed_delivery(agent, message: dict, now: datetime) -> None:
    """A relayed SMS delivery report: what ``POST /sms/delivery/<secret>`` does."""
    body = str(message.get("body") or "").encode("utf-8")
    status = sms.receive_delivery(agent.config, str(message.get("path") or ""),
                                  sms.parse_form(body), now)
    if status != 200:
        log.warning("relayed SMS delivery report %s refused (wrong secret)", message.get("id"))


RELAY_HANDLERS: dict[str, Callable] = {"stk_callback": settle_relayed_stk,
                                       "c2b_confirmation": settle_relayed_c2b,
                                       "sms_delivery": record_relayed_delivery}


class RelayFetcher:
    """Fetch and settle the M-Pesa messages the hub holds for this site."""

    def __init__(self, agent, uploader: Uploader, handlers: dict | None = None):
        self.agent = agent
        self.uploader = uploader
        self.handlers = dict(RELAY_HANDLERS if handlers is None else handlers)
        self.after = 0
        # A hub that is down is asked again after a pause (capped at a minute: a relayed
        # payment must not wait long once the hub is back); kept in memory only, as
        # nothing is lost meanwhile (the hub holds the messages, the STK query still runs).
        self.failures = 0
        self.next_try: datetime | None = None

    def fetch(self, now: datetime) -> int:
        """One short fetch (``wait=0``); returns how many messages were settled and acked."""
        config = self.agent.config
        if not (config.get("MPESA_RELAY") and upstream.enrolled(config)):
            return 0
        if self.next_try is not None and now < self.next_try:
            return 0
        try:
            done = self._fetch(now)
        except (requests.RequestException, ValueError, KeyError, TypeError) as exc:
            delay = backoff_seconds(self.failures, FIRST_BACKOFF, 60.0) * random.uniform(0.5, 1.0)
            self.failures += 1
            self.next_try = now + timedelta(seconds=delay)
            log.warning("relay fetch failed (%s); next try in %.0f s", str(exc)[:200], delay)
            return 0
        self.failures, self.next_try = 0, None
        return done

    def _fetch(self, now: datetime) -> int:
        client = self.uploader.client
        response = client.request("GET", f"/v1/sites/{client.site}/relay?after={self.after}&wait=0")
        if response.status_code != 200:
            raise requests.HTTPError(_error_text(response))
        messages = response.json().get("messages") or []
        done = []
        for message in messages:
            handler = self.handlers.get(message.get("kind"))
            if handler is None:
                log.warning("relayed %s %s: no handler yet; left on the hub",
                            message.get("kind"), message.get("id"))
                continue
            try:
                handler(self.agent, message, now)
            except ValueError as exc:
                # A body that cannot be read will not read better next time: refused and
                # acknowledged, as the site's own URL would answer it with a 400.
                log.warning("relayed %s %s refused: %s", message.get("kind"),
                            message.get("id"), str(exc)[:200])
            done.append(int(message["id"]))
        # Messages no handler takes must not hide newer ones: page past them, and start
        # from the beginning again once the hub has nothing more.
        self.after = int(messages[-1]["id"]) if len(messages) >= 100 else 0
        if done:
            body = json.dumps({"ids": done}).encode("utf-8")
            answer = client.request("POST", f"/v1/sites/{client.site}/relay/ack", body)
            if answer.status_code != 200:
                raise requests.HTTPError(_error_text(answer))
        return len(done)
