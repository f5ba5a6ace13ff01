"""Binance's rate limits as client-side budgets, so that the sender never gets a 429 (and never a 418 ban).

A sliding-window log, not a token bucket: a bucket lets up to 2L out within one interval, and Binance counts per
calendar window. `WindowBudget` admits a request only if the trailing interval stays within capacity, which
bounds every window. The exchange's usage headers can raise the count, never lower it."""
from __future__ import annotations

import re
import sys
from collections import deque
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal
from typing import Any, Iterable, Mapping

from core.clock import Clock

REQUEST_WEIGHT = "REQUEST_WEIGHT"
ORDERS = "ORDERS"
RAW_REQUESTS = "RAW_REQUESTS"
KINDS = frozenset({REQUEST_WEIGHT, ORDERS, RAW_REQUESTS})

INTERVAL_MS = {"SECOND": 1_000, "MINUTE": 60_000, "HOUR": 3_600_000, "DAY": 86_400_000}
_HEADER_UNIT_MS = {"S": 1_000, "M": 60_000, "H": 3_600_000, "D": 86_400_000}
# X-MBX-USED-WEIGHT-1M, X-MBX-ORDER-COUNT-10S, X-MBX-ORDER-COUNT-1D (header names are case-insensitive).
_HEADER_RE = re.compile(r"^x-mbx-(used-weight|order-count)-(\d+)([smhd])$", re.IGNORECASE)


@dataclass(frozen=True)
class RateLimit:
    """One line of exchangeInfo.rateLimits: at most `limit` units of `kind` per `interval_ms`."""

    kind: str
    interval_ms: int
    limit: int

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown rate limit type {self.kind!r}")
        if self.interval_ms <= 0 or self.limit <= 0:
            raise ValueError(f"rate limit needs a positive interval and limit: {self}")


def rate_limits_from_exchange_info(payload: Mapping[str, Any]) -> list[RateLimit]:
    """The account's limits as exchangeInfo declares them (interval x intervalNum). An unknown type or interval
    raises: silently ignoring a limit we do not understand is how one gets banned."""
    limits = []
    for entry in payload.get("rateLimits", ()):
        interval = entry["interval"]
        if interval not in INTERVAL_MS:
            raise ValueError(f"unknown rate limit interval {interval!r}")
        limits.append(
            RateLimit(
                kind=entry["rateLimitType"],
                interval_ms=INTERVAL_MS[interval] * int(entry["intervalNum"]),
                limit=int(entry["limit"]),
            )
        )
    return limits


class WindowBudget:
    """Sliding-window log for one limit: admits `n` at `now` iff (sum over (now - interval, now]) + n <= capacity.

    Also keeps the sum inside the current epoch-aligned window (what Binance reports in its headers), so header
    corrections are O(1) too.
    """

    __slots__ = ("limit", "capacity", "_log", "_used", "_last_ms", "_fixed_start", "_fixed_used")

    def __init__(self, limit: RateLimit, safety: Decimal = Decimal("1")) -> None:
        if not (0 < safety <= 1):
            raise ValueError(f"safety must be in (0, 1], got {safety}")
        self.limit = limit
        # Down: a safety margin may only shrink the budget, never round it above what Binance allows.
        self.capacity = int((Decimal(limit.limit) * safety).to_integral_value(rounding=ROUND_FLOOR))
        self._log: deque[list[int]] = deque()  # [ms, amount], ms non-decreasing
        self._used = 0  # sum of amounts in the log
        self._last_ms = -sys.maxsize
        self._fixed_start = -sys.maxsize
        self._fixed_used = 0

    @property
    def interval_ms(self) -> int:
        return self.limit.interval_ms

    def _now(self, now: int) -> int:
        # A clock that steps back (NTP) must not make old entries look younger than they are: time never regresses.
        if now < self._last_ms:
            now = self._last_ms
        self._last_ms = now
        horizon = now - self.limit.interval_ms
        log = self._log
        while log and log[0][0] <= horizon:
            self._used -= log.popleft()[1]
        return now

    def used(self, now: int) -> int:
        """Amount admitted (or injected by corrections) in the trailing interval ending at `now`."""
        self._now(now)
        return self._used

    def free(self, now: int) -> int:
        return max(0, self.capacity - self.used(now))

    def can_admit(self, n: int, now: int) -> bool:
        return n <= 0 or self.used(now) + n <= self.capacity

    def add(self, n: int, now: int) -> None:
        """Record usage without checking (admission is checked by the caller over all windows at once)."""
        if n <= 0:
            return
        now = self._now(now)
        log = self._log
        if log and log[-1][0] == now:
            log[-1][1] += n  # coalesce same-ms entries: the log stays <= one entry per ms
        else:
            log.append([now, n])
        self._used += n
        start = now - now % self.limit.interval_ms
        if start != self._fixed_start:
            self._fixed_start, self._fixed_used = start, 0
        self._fixed_used += n

    def fixed_window_used(self, now: int) -> int:
        """Amount recorded since the start of the current epoch-aligned window (Binance's counting)."""
        now = self._now(now)
        return self._fixed_used if now - now % self.limit.interval_ms == self._fixed_start else 0

    def wait_ms(self, n: int, now: int) -> int:
        """Milliseconds from `now` until `n` fits, assuming nothing else is admitted meanwhile. Exact: it fits at
        now + wait and not at now + wait - 1. Raises ValueError if `n` exceeds the capacity (never fits)."""
        if n <= 0:
            return 0
        if n > self.capacity:
            raise ValueError(f"{n} can never fit a budget of {self.capacity} per {self.limit.interval_ms} ms")
        now = self._now(now)
        excess = self._used + n - self.capacity
        if excess <= 0:
            return 0
        freed = 0
        for t, amount in self._log:  # oldest first; stops as soon as enough has expired
            freed += amount
            if freed >= excess:
                # the entry at t leaves the trailing window at t + interval (window is (now - interval, now])
                return t + self.limit.interval_ms - now
        raise AssertionError("unreachable: the whole log expiring frees everything")  # pragma: no cover

    def snapshot(self, now: int) -> dict[str, Any]:
        used = self.used(now)
        return {
            "kind": self.limit.kind,
            "interval_ms": self.limit.interval_ms,
            "limit": self.limit.limit,
            "capacity": self.capacity,
            "used": used,
            "free": max(0, self.capacity - used),
            "fixed_window_used": self.fixed_window_used(now),
            "entries": len(self._log),
        }


class RateLimiter:
    """All of one account's limits together; a request is admitted into every window or into none.

    A request charges `weight` to every REQUEST_WEIGHT window, 1 to every RAW_REQUESTS window and `orders` to
    every ORDERS window.
    """

    def __init__(self, limits: Iterable[RateLimit], clock: Clock, safety: Decimal = Decimal("1")) -> None:
        self._clock = clock
        self.windows: list[WindowBudget] = [WindowBudget(limit, safety) for limit in limits]
        self.blocked_until = 0  # ms; nothing is admitted before it (back_off)

    def _charges(self, weight: int, orders: int) -> list[tuple[WindowBudget, int]]:
        if weight < 0 or orders < 0:
            raise ValueError("weight and orders must be >= 0")
        amounts = {REQUEST_WEIGHT: weight, RAW_REQUESTS: 1, ORDERS: orders}
        return [(w, amounts[w.limit.kind]) for w in self.windows]

    def try_acquire(self, weight: int, orders: int = 0) -> bool:
        """Admit one request now if every window has room (then record it everywhere); else record nothing."""
        now = self._clock.now_ms()
        if now < self.blocked_until:
            return False
        charges = self._charges(weight, orders)
        if not all(w.can_admit(n, now) for w, n in charges):
            return False
        for w, n in charges:
            w.add(n, now)
        return True

    def wait_ms(self, weight: int, orders: int = 0) -> int:
        """0 if `try_acquire(weight, orders)` would succeed now, else the exact ms until it will (if nothing else
        is admitted meanwhile). Raises ValueError for a request larger than some window's capacity."""
        now = self._clock.now_ms()
        wait = max(0, self.blocked_until - now)
        for w, n in self._charges(weight, orders):
            wait = max(wait, w.wait_ms(n, now))  # each window's condition only gets easier as time passes
        return wait

    def orders_available(self, weight_per_order: int) -> int:
        """How many order requests (each `weight_per_order` weight, 1 raw request, 1 order) fit right now."""
        if weight_per_order < 0:
            raise ValueError("weight_per_order must be >= 0")
        now = self._clock.now_ms()
        if now < self.blocked_until:
            return 0
        per_request = {REQUEST_WEIGHT: weight_per_order, RAW_REQUESTS: 1, ORDERS: 1}
        available = sys.maxsize  # no window constrains: unbounded (never the case with a real exchangeInfo)
        for w in self.windows:
            cost = per_request[w.limit.kind]
            if cost > 0:
                available = min(available, w.free(now) // cost)
        return available

    def orders_capacity(self, weight_per_order: int) -> int:
        """How many order requests fit in empty windows: what orders_available reaches once every window is free."""
        per_request = {REQUEST_WEIGHT: weight_per_order, RAW_REQUESTS: 1, ORDERS: 1}
        capacity = sys.maxsize
        for w in self.windows:
            cost = per_request[w.limit.kind]
            if cost > 0:
                capacity = min(capacity, w.capacity // cost)
        return capacity

    def correct_from_headers(self, headers: Mapping[str, str]) -> None:
        """Raise local usage to what the exchange reports for its current calendar window; never lower it.

        The difference is recorded at now, which is conservative: it then stays in the trailing window for a full
        interval even if the exchange's calendar window resets sooner. A header for a window we do not track is
        ignored.
        """
        now = self._clock.now_ms()
        for name, value in headers.items():
            match = _HEADER_RE.match(name)
            if match is None:
                continue
            kind = REQUEST_WEIGHT if match.group(1).lower() == "used-weight" else ORDERS
            interval_ms = int(match.group(2)) * _HEADER_UNIT_MS[match.group(3).upper()]
            try:
                reported = int(str(value).strip())
            except ValueError:
                continue  # a garbled header must not break the sender; the local log still holds
            for w in self.windows:
                if w.limit.kind == kind and w.limit.interval_ms == interval_ms:
                    missing = reported - w.fixed_window_used(now)
                    if missing > 0:
                        w.add(missing, now)

    def back_off(self, retry_after_ms: int) -> None:
        """After a 429/418: admit nothing before now + retry_after_ms (an earlier, longer block stays)."""
        if retry_after_ms < 0:
            raise ValueError("retry_after_ms must be >= 0")
        self.blocked_until = max(self.blocked_until, self._clock.now_ms() + retry_after_ms)

    def snapshot(self) -> dict[str, Any]:
        """Plain data for inspect(): every window's used/capacity/limit, and the back-off deadline."""
        now = self._clock.now_ms()
        return {
            "now_ms": now,
            "blocked_until": self.blocked_until,
            "blocked": now < self.blocked_until,
            "windows": [w.snapshot(now) for w in self.windows],
        }
