"""The Daraja emulator's fault plan: what goes wrong with the next requests, or for a phone.

``FaultPlan`` keeps three things and answers the emulator's questions about them:

- queued faults per endpoint (``fail_next``): the next requests answer a documented error
  or, with "drop", the push is taken and the connection closes unanswered;
- held-back push answers (``delay_next_push``): the next pushes are taken and answered
  only after some seconds, so the client's read timeout fires first;
- rules per phone (``set_phone``), for every push to that phone from then on: its answer
  held back or never sent, its callback lost, sent twice or delayed, and an STK Query
  outage (queries about its transactions answer "System is busy").

It has its own lock; the emulator asks it while serving requests.
"""
from __future__ import annotations

import math
import re
import threading
import time
from typing import Any

from .daraja_rules import FAULTS, LOST, ONCE, TWICE

#: The push answer of a phone rule that is never sent (the connection closes).
NEVER = "never"
#: What a phone's callback may be made to do.
CALLBACK_DELIVERIES = (ONCE, LOST, TWICE)
PHONE_RULES = ("push_answer", "callback", "callback_delay", "query_outage")
ENDPOINTS = ("push", "query", "oauth")

_UNSET: Any = object()
_PHONE = re.compile(r"^254(7|1)\d{8}$")


def daraja_phone(text: str) -> str:
    """A phone as Daraja sees it (``2547XXXXXXXX``) from the usual ways of typing one."""
    digits = re.sub(r"[\s()-]", "", str(text)).lstrip("+")
    if digits.startswith("0") and len(digits) == 10:
        digits = "254" + digits[1:]
    if not _PHONE.match(digits):
        raise ValueError(f"not a phone Daraja accepts (2547XXXXXXXX or 2541XXXXXXXX): {text!r}")
    return digits


class FaultPlan:
    """Queued faults, held-back push answers and per-phone rules."""

    def __init__(self):
        self._lock = threading.Lock()
        self._faults: dict[str, list[str]] = {on: [] for on in ENDPOINTS}
        self._push_delays: list[float] = []
        #: phone -> {"push_answer": seconds | NEVER, "callback": ..., "callback_delay": s,
        #: "query_outage": monotonic time it ends (math.inf: until cleared)}
        self._phones: dict[str, dict[str, Any]] = {}

    # --- setting the plan ------------------------------------------------------------

    def fail_next(self, kind: str, n: int = 1, on: str = "push") -> None:
        """Answer the next ``n`` requests to ``on`` with fault ``kind``."""
        if kind not in FAULTS:
            raise ValueError(f"unknown fault {kind!r}; one of {', '.join(sorted(FAULTS))}")
        if on not in self._faults:
            raise ValueError("on must be push, query or oauth")
        if n < 1:
            raise ValueError("n must be 1 or more")
        with self._lock:
            self._faults[on].extend([kind] * n)

    def delay_next_push(self, seconds: float, n: int = 1) -> None:
        """Take the next ``n`` pushes but answer each only ``seconds`` later."""
        if not seconds >= 0 or math.isinf(seconds) or n < 1:
            raise ValueError("seconds must be 0 or more and n 1 or more")
        with self._lock:
            self._push_delays.extend([float(seconds)] * n)

    def clear(self) -> None:
        """Forget every queued fault and held-back answer (phone rules stay)."""
        with self._lock:
            for queue in self._faults.values():
                queue.clear()
            self._push_delays.clear()

    def set_phone(self, phone: str, *, push_answer: Any = _UNSET, callback: Any = _UNSET,
                  callback_delay: Any = _UNSET, query_outage: Any = _UNSET) -> dict:
        """Change the rules for every later push to ``phone``; None clears one rule.

        ``push_answer``: seconds before the push is answered, or "never" (the push is
        taken, the connection closes). ``callback``: "once", "lost" or "twice" (instead of
        what the test number says). ``callback_delay``: extra seconds before each callback
        POST. ``query_outage``: seconds from now during which STK Query about the phone's
        pushes answers 500.003.02, or True until cleared. Returns the phone's rules.
        """
        phone = daraja_phone(phone)
        changes: dict[str, Any] = {}
        if push_answer is not _UNSET:
            if push_answer is not None and push_answer != NEVER:
                push_answer = _seconds("push_answer", push_answer)
            changes["push_answer"] = push_answer
        if callback is not _UNSET:
            if callback is not None and callback not in CALLBACK_DELIVERIES:
                raise ValueError(f"callback must be one of {', '.join(CALLBACK_DELIVERIES)}")
            changes["callback"] = callback
        if callback_delay is not _UNSET:
            if callback_delay is not None:
                callback_delay = _seconds("callback_delay", callback_delay)
            changes["callback_delay"] = callback_delay
        if query_outage is not _UNSET:
            if query_outage is True:
                changes["query_outage"] = math.inf
            elif query_outage is None or query_outage is False:
                changes["query_outage"] = None
            else:
                changes["query_outage"] = (time.monotonic()
                                           + _seconds("query_outage", query_outage))
        with self._lock:
            rules = self._phones.setdefault(phone, {})
            rules.update(changes)
            for name in [name for name, value in rules.items() if value is None]:
                del rules[name]
            if not rules:
                del self._phones[phone]
            return self._shown(rules)

    def clear_phone(self, phone: str) -> bool:
        """Drop every rule for ``phone``; False when it had none."""
        with self._lock:
            return self._phones.pop(daraja_phone(phone), None) is not None

    # --- reading the plan ------------------------------------------------------------

    def faults(self) -> dict[str, Any]:
        """What is queued: faults per endpoint and held-back push answers (copies)."""
        with self._lock:
            return {**{on: list(queue) for on, queue in self._faults.items()},
                    "push_answer_delays": list(self._push_delays)}

    def phones(self) -> dict[str, dict]:
        """Every phone's rules, as ``set_phone`` returns them."""
        with self._lock:
            return {phone: self._shown(rules) for phone, rules in self._phones.items()}

    def take_fault(self, on: str) -> str | None:
        """The next queued fault for ``on`` (it is used up), or None."""
        with self._lock:
            return self._faults[on].pop(0) if self._faults[on] else None

    def push_answer(self, phone: str) -> tuple[float, bool]:
        """How a push to ``phone`` is answered: (seconds held back, never answered)."""
        with self._lock:
            rule = self._phones.get(phone, {}).get("push_answer")
            queued = self._push_delays.pop(0) if self._push_delays else 0.0
        if rule == NEVER:
            return queued, True
        return queued + (rule or 0.0), False

    def callback(self, phone: str, delivery: str) -> tuple[str, float]:
        """A push's callback delivery and extra delay, after the phone's rules."""
        with self._lock:
            rules = dict(self._phones.get(phone, {}))
        return rules.get("callback", delivery), rules.get("callback_delay", 0.0)

    def query_outage(self, phone: str) -> bool:
        """True while STK Query about ``phone``'s pushes answers "System is busy"."""
        with self._lock:
            until = self._phones.get(phone, {}).get("query_outage")
        return until is not None and time.monotonic() < until

    @staticmethod
    def _shown(rules: dict) -> dict:
        """A phone's rules for people: the outage as seconds left (True: until cleared)."""
        shown = dict(rules)
        if "query_outage" in shown:
            until = shown["query_outage"]
            shown["query_outage"] = (True if until == math.inf
                                     else round(max(0.0, until - time.monotonic()), 3))
        return shown


def _seconds(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a number of seconds, 0 or more")
    return float(value)
